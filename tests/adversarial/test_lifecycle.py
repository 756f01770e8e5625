"""Object lifecycle: objects made with __new__ alone, __init__ run twice or
after a failure, copy / deepcopy / pickle, weakrefs, subclassing and
gc.collect() in the middle of use, for Buffer, Call, Registry, Target
records and errors.  Anything that could touch freed or NULL memory runs in
a child interpreter."""

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest

import fjffi
from fjffi import errors as E

from .helpers import assert_clean, run_snippets


def fresh_registry():
    r = fjffi.Registry()
    r.register_builtins()
    return r


# --- Buffer made with __new__ alone, or whose __init__ failed ----------------

def uninitialised():
    return fjffi.Buffer.__new__(fjffi.Buffer)


def failed_init():
    """A Buffer whose only __init__ raised (wrong size): never valid."""
    b = fjffi.Buffer.__new__(fjffi.Buffer)
    with pytest.raises(E.BufferMismatchError):
        b.__init__(bytearray(4), (1,), "float64")
    return b


MAKERS = {"new_only": uninitialised, "failed_init": failed_init}

USES = {
    "output_of_noop": lambda b: fjffi.Call("noop", fresh_registry()).invoke((), (b,)),
    "input_of_noop": lambda b: fjffi.Call("noop", fresh_registry()).invoke((b,), ()),
    "input_of_negate": lambda b: fjffi.Call("negate", fresh_registry()).invoke(
        (b,), (np.zeros(()),)),
    "input_of_call": lambda b: fjffi.call("noop", (b,), (), registry=fresh_registry()),
    "from_buffer": fjffi.from_buffer,
    "tobytes": lambda b: b.tobytes(),
}


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("use", USES)
def test_uninitialised_buffer_is_refused(make, use):
    b = MAKERS[make]()
    with pytest.raises(TypeError, match="initiali"):
        USES[use](b)


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("export", [np.asarray, memoryview, bytes])
def test_uninitialised_buffer_exports_nothing(make, export):
    b = MAKERS[make]()
    if export is np.asarray:
        # numpy wraps what refuses the buffer protocol as a Python object.
        assert np.asarray(b).dtype == object
        return
    with pytest.raises((BufferError, TypeError)):
        export(b)


@pytest.mark.parametrize("make", MAKERS)
def test_uninitialised_buffer_repr_and_properties_do_not_crash(make):
    b = MAKERS[make]()
    repr(b)
    for prop in ("shape", "dtype", "nbytes", "ndim", "readonly"):
        try:
            getattr(b, prop)
        except TypeError:
            pass


def test_buffer_is_final():
    with pytest.raises(TypeError):
        type("B", (fjffi.Buffer,), {})


# Each snippet prints "ok" last when the behaviour holds; a crash or a wrong
# answer shows in the child's output.
BUFFER_SOURCES = {
    "Buffer": "src = bytearray(np.arange(4.0).tobytes()); b = fjffi.Buffer(src, (4,), 'float64')",
    "zeros": "b = fjffi.Buffer.zeros((4,), 'float64'); fjffi.from_buffer(b)[:] = np.arange(4.0)",
    "to_buffer_array": "b = fjffi.to_buffer(np.arange(4.0))",
    "to_buffer_copy": "b = fjffi.to_buffer(np.arange(8.0)[::2] / 2 * 2 // 2)",
    "to_buffer_scalar": "b = fjffi.to_buffer(1.5)",
}
SECOND_INIT = {
    "same_size": "(bytearray(32), (4,), 'float64')",
    "bigger": "(bytearray(1 << 20), (1 << 17,), 'float64')",
    "bad_size": "(bytearray(3), (4,), 'float64')",
}

DOUBLE_INIT_SNIPPETS = {
    f"{src}-{second}": f"""
{BUFFER_SOURCES[src]}
view = fjffi.from_buffer(b)
before = (b.shape, str(b.dtype), b.tobytes())
try:
    b.__init__(*{SECOND_INIT[second]})
    print("second __init__ accepted")
except TypeError as e:
    assert "once" in str(e), e
junk = [bytearray(b'\\xee' * 64) for _ in range(2000)]  # reuse freed memory
gc.collect()
assert (b.shape, str(b.dtype), b.tobytes()) == before, ((b.shape, str(b.dtype)), before)
assert view.tobytes() == before[2], "the from_buffer view changed"
print("ok")
"""
    for src in BUFFER_SOURCES for second in SECOND_INIT
}


@pytest.fixture(scope="module")
def double_init_results():
    return run_snippets(DOUBLE_INIT_SNIPPETS)


@pytest.mark.parametrize("case", DOUBLE_INIT_SNIPPETS)
def test_buffer_init_twice_is_refused_and_changes_nothing(double_init_results, case):
    assert_clean(double_init_results[case], "ok")


# A kernel writing through an uninitialised output Buffer writes through NULL.
NULL_OUTPUT_SNIPPETS = {
    f"{make}-{target}": f"""
b = fjffi.Buffer.__new__(fjffi.Buffer)
if {make == 'failed_init'}:
    try:
        b.__init__(bytearray(4), (1,), "float64")
    except E.BufferMismatchError:
        pass
r = fjffi.Registry(); r.register_builtins()
try:
    fjffi.Call("{target}", r).invoke({inputs}, (b,))
    print("accepted")
except TypeError as e:
    print("ok")
"""
    for make in MAKERS
    for target, inputs in [("copy", "(np.zeros(8, np.uint8),)"), ("double_f64", "(1.0,)"),
                           ("negate", "(np.zeros(()),)"), ("sum", "(np.zeros(3),)")]
}


@pytest.fixture(scope="module")
def null_output_results():
    return run_snippets(NULL_OUTPUT_SNIPPETS)


@pytest.mark.parametrize("case", NULL_OUTPUT_SNIPPETS)
def test_uninitialised_buffer_as_output_of_a_writing_kernel(null_output_results, case):
    assert_clean(null_output_results[case], "ok")


# --- Call --------------------------------------------------------------------

CALL_SNIPPETS = {
    "new_only_invoke": """
c = fjffi.Call.__new__(fjffi.Call)
repr(c)
try:
    c.invoke((), ())
    print("invoked")
except TypeError as e:
    assert "initiali" in str(e), e
    print("ok")
""",
    "new_only_invoke_with_buffers": """
c = fjffi.Call.__new__(fjffi.Call)
try:
    c.invoke((np.zeros(3),), (np.zeros(3),))
    print("invoked")
except TypeError:
    print("ok")
""",
    "init_twice": """
r = fjffi.Registry(); r.register_builtins()
c = fjffi.Call("negate", r)
try:
    c.__init__("noop")
    print("second __init__ accepted")
except TypeError:
    pass
assert c.name == "negate" and c.registry is r, (c.name, c.registry)
out = np.zeros(2)
c.invoke((np.ones(2),), (out,))
assert out.tolist() == [-1.0, -1.0], out
print("ok")
""",
    "init_twice_racing_invoke": """
r = fjffi.Registry(); r.register_builtins()
c = fjffi.Call("negate", r)
stop = threading.Event()
def reinit():
    while not stop.is_set():
        try:
            c.__init__("neg" + "ate", fjffi.Registry())
        except TypeError:
            pass
t = threading.Thread(target=reinit); t.start()
try:
    out = np.zeros(1 << 16)
    for _ in range(300):
        c.invoke((np.ones(1 << 16),), (out,))
        assert (out == -1).all()
finally:
    stop.set(); t.join()
print("ok")
""",
}
# A Call reaches its registry's table through a raw pointer: the Call must
# keep the registry alive, through collection and through a cycle.
CALL_SNIPPETS["keeps-its-registry"] = """
import weakref
r = fjffi.Registry(); r.register_builtins()
c = fjffi.Call("negate", r)
ref = weakref.ref(r)
del r
junk = [bytearray(4096) for _ in range(2000)]  # reuse any freed memory
gc.collect()
assert ref() is not None, "the registry went while a Call of it lives"
out = np.zeros(2); c.invoke((np.ones(2),), (out,))
assert out.tolist() == [-1.0, -1.0], out
del c
gc.collect()
assert ref() is None, "the registry outlived its last Call"
print("ok")
"""
CALL_SNIPPETS["in-a-cycle-with-its-registry"] = """
import weakref
r = fjffi.Registry(); r.register_builtins()
c = fjffi.Call("negate", r)
box = [c]
r.register_callback("hold", lambda x, box=box: x)  # r -> callback -> box -> c -> r
ref = weakref.ref(r)
out = np.zeros(2); c.invoke((np.ones(2),), (out,))
del r, c, box
gc.collect()
assert ref() is None, "a cycle through a Call and its registry is never collected"
print("ok")
"""
for how in ("copy.copy", "copy.deepcopy", "pickle"):
    clone = ("pickle.loads(pickle.dumps(c))" if how == "pickle" else f"{how}(c)")
    for name, ins, outs in [("negate", "(np.arange(3.0),)", "(np.zeros(3),)"),
                            ("add", "(np.ones(2), np.ones(2))", "(np.zeros(2),)"),
                            ("double_f64", "(2.0,)", "(np.zeros(()),)")]:
        CALL_SNIPPETS[f"{how}-default-{name}"] = f"""
import copy, pickle
c = fjffi.Call("{name}")
d = {clone}
junk = [str(i) * 50 for i in range(5000)]  # reuse any freed temporary
gc.collect()
assert type(d) is fjffi.Call and d.name == "{name}", d
a, b = {outs}, {outs}
c.invoke({ins}, a); d.invoke({ins}, b)
assert all(np.array_equal(x, y) for x, y in zip(a, b)), (a, b)
print("ok")
"""
    CALL_SNIPPETS[f"{how}-private"] = f"""
import copy, pickle
r = fjffi.Registry(); r.register_builtins()
c = fjffi.Call("negate", r)
if "{how}" == "pickle":
    try:
        pickle.dumps(c)
        print("pickled a Call on a private registry")
    except TypeError as e:
        assert "regist" in str(e), e
        print("ok")
else:
    d = {clone}
    gc.collect()
    assert d.registry is r and d.name == "negate", (d.registry, d.name)
    out = np.zeros(2); d.invoke((np.ones(2),), (out,))
    assert out.tolist() == [-1.0, -1.0]
    print("ok")
"""


@pytest.fixture(scope="module")
def call_results():
    return run_snippets(CALL_SNIPPETS)


@pytest.mark.parametrize("case", CALL_SNIPPETS)
def test_call_lifecycle(call_results, case):
    assert_clean(call_results[case], "ok")


def test_call_subclass_behaves_like_call():
    class MyCall(fjffi.Call):
        pass

    r = fresh_registry()
    out = np.zeros(2)
    MyCall("negate", r).invoke((np.ones(2),), (out,))
    assert out.tolist() == [-1.0, -1.0]


# --- Buffer copy and pickle ------------------------------------------------

def buffer_samples():
    return {
        "f64": fjffi.to_buffer(np.arange(5.0)),
        "zeros_i32_2d": fjffi.Buffer.zeros((2, 3), "int32"),
        "scalar": fjffi.to_buffer(2.5),
        "bool": fjffi.to_buffer(np.array([True, False])),
        "complex": fjffi.to_buffer(np.array([1 + 2j])),
        "empty": fjffi.Buffer.zeros((0, 4), "float32"),
        "bytes_readonly": fjffi.Buffer(b"\x01" * 8, (2,), "int32"),
    }


@pytest.mark.parametrize("kind", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("sample", list(buffer_samples()))
def test_buffer_copy_and_pickle(kind, sample):
    b = buffer_samples()[sample]
    if kind == "pickle":
        d = pickle.loads(pickle.dumps(b))
    else:
        d = getattr(copy, kind)(b)
    assert type(d) is fjffi.Buffer
    assert (d.shape, d.dtype, d.tobytes()) == (b.shape, b.dtype, b.tobytes())
    if kind != "pickle" and b.nbytes and not b.readonly:
        before = b.tobytes()
        np.asarray(d).reshape(-1).view(np.uint8)[:] = 0xA5
        assert b.tobytes() == before, "the copy shares memory with the original"
        assert d.tobytes() == b"\xa5" * b.nbytes


# --- Registry ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["copy", "deepcopy", "pickle"])
def test_registry_does_not_copy(kind):
    r = fresh_registry()
    with pytest.raises(TypeError):
        if kind == "pickle":
            pickle.dumps(r)
        else:
            getattr(copy, kind)(r)
    assert len(r) == 8


@pytest.mark.thread_unsafe(reason="gc.collect() is a no-op while another thread collects")
def test_registry_weakref_and_collection():
    r = fresh_registry()
    ref = weakref.ref(r)
    assert ref() is r
    del r
    gc.collect()
    assert ref() is None


@pytest.mark.thread_unsafe(reason="gc.collect() is a no-op while another thread collects")
@pytest.mark.parametrize("flavor", ["pure", "io"])
def test_cycle_through_a_callback_is_collected(flavor):
    class Holder:
        def __init__(self):
            self.registry = fjffi.Registry()
            self.payload = bytearray(1 << 20)
            self.registry.register_callback("m", self.method, flavor=flavor)

        def method(self, x):
            return x

    h = Holder()
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None, "a Registry cycle through a bound method is never collected"


@pytest.mark.thread_unsafe(reason="gc.collect() and tracemalloc are process-wide")
def test_cycles_do_not_leak_memory():
    import tracemalloc

    class Holder:
        def __init__(self):
            self.registry = fjffi.Registry()
            self.payload = np.ones(1 << 20)  # 8 MB
            self.registry.register_callback("m", self.method)

        def method(self, x):
            return x

    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            Holder()
            gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 32 << 20, f"{grown >> 20} MiB kept after 50 collected cycles"


def test_gc_collect_inside_callback_and_between_calls():
    r = fjffi.Registry()
    seen = []

    def cb(x):
        gc.collect()
        seen.append(x.copy())
        return x * 2

    r.register_callback("gc", cb)
    for i in range(20):
        (y,) = fjffi.call("gc", (np.full(3, float(i)),), (np.empty(3),), registry=r)
        gc.collect()
        assert y.tolist() == [2.0 * i] * 3
    assert [s[0] for s in seen] == [float(i) for i in range(20)]


# --- Target records ------------------------------------------------------------

def test_target_record_is_frozen():
    import dataclasses

    r = fresh_registry()
    rec = r.get("negate")
    for field in ("name", "kind", "api_version", "gil", "thread_safe", "owner"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rec, field, None)


@pytest.mark.parametrize("kind", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("name", ["noop", "negate", "sum"])
def test_builtin_target_record_copies_equal(kind, name):
    rec = fresh_registry().get(name)
    d = pickle.loads(pickle.dumps(rec)) if kind == "pickle" else getattr(copy, kind)(rec)
    assert d == rec and d.doc == rec.doc


# The registry must hold what keeps a target's code loaded and the callable
# it runs itself: rebinding a field of the record it handed out (frozen
# dataclasses yield to object.__setattr__ and __dict__) must change nothing.
TARGET_SNIPPETS = {}
REBIND = {
    "setattr_None": "object.__setattr__(rec, 'owner', None)",
    "dict_None": "rec.__dict__['owner'] = None",
    "setattr_other": "object.__setattr__(rec, 'owner', RawProto(lambda *a: 5))",
}
for key, how in REBIND.items():
    TARGET_SNIPPETS[f"ctypes_kernel-{key}"] = f"""
r = fjffi.Registry()
rec = r.register("k", RawProto(lambda i, ni, o, no: 0))
{how}
gc.collect()
junk = [RawProto(lambda *a: 9) for _ in range(200)]
fjffi.Call("k", r).invoke((), ())
fjffi.Call("k", r).invoke((), ())
print("ok")
"""
    TARGET_SNIPPETS[f"callback-{key}"] = f"""
r = fjffi.Registry()
rec = r.register_callback("cb", lambda: np.float64(1.0))
{how}
out = np.zeros(())
fjffi.Call("cb", r).invoke((), (out,))
assert float(out) == 1.0, float(out)
print("ok")
"""


@pytest.fixture(scope="module")
def target_results():
    return run_snippets(TARGET_SNIPPETS)


@pytest.mark.parametrize("case", TARGET_SNIPPETS)
def test_rebinding_a_target_record_field_changes_nothing(target_results, case):
    assert_clean(target_results[case], "ok")


# --- errors ------------------------------------------------------------------

ERRORS = {
    "TargetNotFoundError": lambda: E.TargetNotFoundError("a", ["b", "c"]),
    "DuplicateTargetError": lambda: E.DuplicateTargetError("a"),
    "NullPointerError": lambda: E.NullPointerError("a"),
    "BufferMismatchError": lambda: E.BufferMismatchError(1, 8, 4, "detail"),
    "BufferMismatchError_overflow": lambda: E.BufferMismatchError(None, None, 4),
    "InvalidBoolByteError": lambda: E.InvalidBoolByteError(1, 2, 3, "where"),
    "UnsupportedDtypeError": lambda: E.UnsupportedDtypeError(np.dtype("M8[s]"), "d"),
    "UnrepresentableValueError": lambda: E.UnrepresentableValueError("int64", 2**70),
    "LayoutError": lambda: E.LayoutError("message"),
    "CallFailedError": lambda: E.CallFailedError("a", 3, "message"),
    "PurityViolationError": lambda: E.PurityViolationError("a", "detail"),
    "BufferOverrunError": lambda: E.BufferOverrunError("a", 1, 2),
    "FfiError": lambda: E.FfiError("x"),
}
CLONERS = {
    "pickle": lambda e: pickle.loads(pickle.dumps(e)),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", CLONERS)
@pytest.mark.parametrize("which", ERRORS)
def test_error_round_trip_keeps_fields(how, which):
    e = ERRORS[which]()
    d = CLONERS[how](e)
    assert type(d) is type(e) and str(d) == str(e) and d.args == e.args
    assert vars(d) == vars(e)


@pytest.mark.parametrize("how", CLONERS)
@pytest.mark.parametrize("which", ERRORS)
def test_error_round_trip_keeps_notes_and_added_attributes(how, which):
    """add_note() (and any attribute set after construction) is part of an
    exception's state; pickle (multiprocessing, pytest-xdist) must keep it."""
    e = ERRORS[which]()
    e.add_note("while calling my_kernel")
    e.context_info = 42
    d = CLONERS[how](e)
    assert getattr(d, "__notes__", None) == ["while calling my_kernel"]
    assert getattr(d, "context_info", None) == 42


def test_raised_errors_pickle():
    r = fresh_registry()
    raised = []
    for fn in (lambda: fjffi.Call("nope", r).invoke((), ()),
               lambda: fjffi.call("fail", (), (), registry=r),
               lambda: r.register_callback("noop", lambda: None),
               lambda: fjffi.Call("negate", r).invoke((np.ones(2),), (np.zeros(2, np.int8),)),
               lambda: fjffi.to_buffer(2**70)):
        with pytest.raises(E.FfiError) as info:
            fn()
        raised.append(info.value)
    for e in raised:
        d = pickle.loads(pickle.dumps(e))
        assert type(d) is type(e) and str(d) == str(e) and vars(d) == vars(e)
