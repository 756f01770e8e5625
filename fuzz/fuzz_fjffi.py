"""Fuzz fjffi's boundary: random bytes become shapes, dtypes, arrays and
calls to Buffer, Buffer.zeros, to_buffer/from_buffer, Registry and
Call.invoke on the built-in and test-only kernels.

Only documented outcomes may come out: success with the contract's results,
or an fjffi.FfiError, TypeError, ValueError, OverflowError or MemoryError,
with every input unchanged and the outputs either untouched or all zero.
Anything else is a finding; a native crash ends the run.

    python fuzz/fuzz_fjffi.py --seconds 300          # atheris (libFuzzer), if installed
    python fuzz/fuzz_fjffi.py --engine random --runs 100000

With atheris, coverage comes from this harness and fjffi's Python modules
(instrumented at import); the Cython and C core are not instrumented (that
would need a clang -fsanitize=fuzzer build), so they are fuzzed black-box.
The kept corpus is fuzz/corpus/; new inputs go to a scratch folder.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import tempfile
import time
import traceback

import numpy as np

import fjffi
from fjffi import _testing

ALLOWED = (fjffi.FfiError, TypeError, ValueError, OverflowError, MemoryError)
DTYPES = ["float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
          "uint64", "uint32", "uint16", "uint8", "bool", "complex64", "complex128"]
ODD_DTYPES = ["float128", object, "U2", "S3", "V8", "M8[s]", ">f8", ">i4", "f8,,", "f8,[",
              "nonsense", "(2)f8", "i4,i4", int, float, None, 3, b"f8"]
HUGE_DIMS = [-1, -(2**63), 2**31, 2**32 + 1, 2**61, 2**62, 2**63 - 1, 2**63, 2**64]
MAX_ALLOC = 1 << 16  # bytes: the harness never asks for more than this
# Kernels safe on any buffers.  GUARDED ones write or read a fixed size (raw
# ABI) or overrun on purpose, so they run only in guard mode on outputs and
# on an input 0 of at least 8 bytes.  segfault and busy_loop never run.
KERNELS = ["noop", "fail", "negate", "add", "multiply", "sum", "write_one_byte_ok",
           "write_then_fail", "write_prefix", "bool_two", "fail_with_message", "raw_noop"]
GUARDED = ["off_by_one", "copy", "double_f64"]


class Finding(AssertionError):
    """An outcome the contract does not allow."""


class Input:
    """Reads values from fuzzer bytes; past the end, every read gives 0."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk + bytes(n - len(chunk))

    def int(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        return lo + int.from_bytes(self.take(max(1, (span.bit_length() + 7) // 8)), "little") % span

    def choice(self, options):
        return options[self.int(0, len(options) - 1)]

    def flag(self, percent: int = 50) -> bool:
        return self.int(0, 99) < percent


REGISTRY = _testing.registry()
REGISTRY.register_builtins()
NAMES = [n for n in KERNELS + GUARDED if n in REGISTRY]
UNGUARDED = [n for n in NAMES if n not in GUARDED]


def dtype(inp: Input):
    return inp.choice(DTYPES) if inp.flag(85) else inp.choice(ODD_DTYPES)


def shape(inp: Input) -> tuple:
    ndim = inp.int(0, 4) if inp.flag(95) else inp.int(5, 70)
    return tuple(inp.int(0, 5) if inp.flag(90) else inp.choice(HUGE_DIMS) for _ in range(ndim))


def numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def array(inp: Input, dt=None, dims=None) -> np.ndarray:
    """A small array of random bytes, in a random layout."""
    if dt is None:
        try:
            dt = numpy_dtype(dtype(inp))
        except (TypeError, ValueError, SyntaxError, ImportError):
            dt = np.dtype("float64")
    dt = np.dtype(dt)
    if dims is None:
        dims = tuple(inp.int(0, 4) for _ in range(inp.int(0, 3)))
    count = math.prod(dims)
    if dt.hasobject or dt.kind in "UM":
        return np.array(list(range(count)), dtype=dt).reshape(dims)
    base = np.frombuffer(bytearray(inp.take(count * dt.itemsize * 2 + 1)), dtype=np.uint8)
    layout = inp.int(0, 6)
    if dt.kind == "b":
        base = base & 1
    if layout == 1:  # every other element
        arr = base[:count * dt.itemsize * 2].view(dt)[::2]
    elif layout == 2:  # one byte past an aligned start
        arr = base[1:1 + count * dt.itemsize].view(dt)
    else:
        arr = np.array(base[:count * dt.itemsize].view(dt))
    arr = arr.reshape(dims)
    if layout == 3:
        arr = np.array(arr, order="F")  # np.asfortranarray would make a 0-d array 1-d
    elif layout == 4 and dt.itemsize > 1:
        arr = arr.astype(dt.newbyteorder())
    elif layout == 5:
        arr.flags.writeable = False
    return arr


def value(inp: Input):
    kind = inp.int(0, 9)
    if kind == 0:
        return int.from_bytes(inp.take(9), "little", signed=True)
    if kind == 1:
        return float(np.frombuffer(inp.take(8), dtype=np.float64)[0])
    if kind == 2:
        return complex(inp.int(-9, 9), inp.int(-9, 9))
    if kind == 3:
        return inp.flag()
    if kind == 4:
        return array(inp)[()] if inp.flag() else np.float32(inp.int(-9, 9))
    if kind == 5:
        return [inp.int(-3, 3) for _ in range(inp.int(0, 3))]
    if kind == 6:
        return inp.choice(["abc", b"abc", None, object(), [1, "a"], [[1], [2, 3]]])
    if kind == 7:
        return fjffi.Buffer.zeros(tuple(inp.int(0, 3) for _ in range(inp.int(0, 2))),
                                  inp.choice(DTYPES))
    return array(inp)


def memory(x) -> bytes | None:
    """The bytes behind x (its whole base, for a view); None if it has none."""
    while isinstance(x, np.ndarray) and x.base is not None:
        x = x.base
    if isinstance(x, np.ndarray):
        return None if x.dtype.hasobject else x.tobytes()
    if isinstance(x, (fjffi.Buffer, bytes, bytearray, memoryview)):
        return bytes(x) if not isinstance(x, fjffi.Buffer) else x.tobytes()
    return None


def expect(ok: bool, what: str):
    if not ok:
        raise Finding(what)


# --- the operations ------------------------------------------------------------

def op_buffer(inp: Input):
    dims, dt = shape(inp), dtype(inp)
    source = inp.int(0, 3)
    n = inp.int(0, 64)
    data = (bytearray(inp.take(n)), bytes(inp.take(n)), array(inp),
            memoryview(bytearray(n))[::2])[source]
    before = memory(data)
    try:
        buf = fjffi.Buffer(data, dims, dt)
    finally:
        expect(memory(data) == before, "Buffer changed its data")
    # PyObject pointers as numbers: a kernel writing them corrupts the interpreter.
    expect(not (isinstance(data, np.ndarray) and data.dtype.hasobject),
           "Buffer wrapped the memory of an object array")
    itemsize = 2 if isinstance(buf.dtype, str) else buf.dtype.itemsize
    expect(buf.shape == dims and buf.nbytes == math.prod(dims) * itemsize,
           f"{buf!r} made from shape {dims}")
    expect(buf.tobytes() == memoryview(data).tobytes(), "Buffer bytes differ from its data")
    round_trip(buf)


def op_zeros(inp: Input):
    dims, dt = shape(inp), dtype(inp)
    try:
        itemsize = 2 if dt == "bfloat16" else max(np.dtype(dt).itemsize, 1)
    except Exception:  # noqa: BLE001 -- fjffi refuses it before allocating
        itemsize = 1
    if all(d >= 0 for d in dims) and MAX_ALLOC < math.prod(dims) * itemsize < 2**63:
        return  # a valid shape too big to allocate here
    buf = fjffi.Buffer.zeros(dims, dt)
    expect(buf.tobytes() == bytes(buf.nbytes) and not buf.readonly, "zeros not zero")
    round_trip(buf)


def round_trip(buf):
    if isinstance(buf.dtype, str):
        return
    view = fjffi.from_buffer(buf)
    expect(view.shape == buf.shape and view.tobytes() == buf.tobytes(), "from_buffer differs")
    expect(fjffi.to_buffer(view).tobytes() == buf.tobytes(), "to_buffer(from_buffer) differs")


def op_to_buffer(inp: Input):
    x = value(inp)
    before = memory(x)
    try:
        buf = fjffi.to_buffer(x)
    finally:
        expect(memory(x) == before, "to_buffer changed its argument")
    if isinstance(x, np.ndarray):
        native = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
        expect(buf.shape == x.shape and buf.tobytes() == native.tobytes(),
               f"to_buffer lost bits of a {x.dtype} array")
    round_trip(buf)


def matched(inp: Input):
    """A typed kernel with inputs and an output it accepts, in random layouts."""
    name = inp.choice(["negate", "add", "multiply", "sum"])
    dt = np.dtype(inp.choice(["float64", "float32", "int64", "int32"]))
    dims = tuple(inp.int(0, 4) for _ in range(inp.int(0, 3)))
    inputs = [array(inp, dt, dims) for _ in range(2 if name in ("add", "multiply") else 1)]
    return name, inputs, [np.empty(() if name == "sum" else dims, dt)]


def op_matched(inp: Input):
    name, inputs, outputs = matched(inp)
    run_call(name, inp.flag(20), inputs, outputs)


def op_call(inp: Input):
    """fjffi.call: outputs allocated from result specs."""
    name, inputs, outputs = matched(inp) if inp.flag() else \
        (inp.choice(UNGUARDED), [value(inp) for _ in range(inp.int(0, 2))],
         [array(inp) for _ in range(inp.int(0, 2))])
    before = [memory(x) for x in inputs]
    results = fjffi.call(name, inputs, outputs, REGISTRY)
    expect([memory(x) for x in inputs] == before, f"call {name} changed an input")
    expect([(r.shape, r.dtype) for r in results]
           == [(o.shape, o.dtype.newbyteorder("=")) for o in outputs],
           f"call {name} returned results unlike its specs")
    check_results(name, inputs, results)


def op_invoke(inp: Input):
    name = inp.choice(NAMES)
    guard = name in GUARDED or inp.flag(20)
    inputs = [value(inp) for _ in range(inp.int(0, 3))]
    if name in ("copy", "double_f64"):
        # Raw kernels read 8 bytes of input 0, whatever its size.
        inputs = [np.arange(float(inp.int(1, 4)))] + inputs[1:] * inp.flag(20)
    if name == "write_prefix" and inp.flag(70):
        inputs = [np.int64(inp.int(-2, 80)), np.uint8(inp.int(0, 255)), inp.flag()]
    outputs = [array(inp) for _ in range(inp.int(0, 3))]
    if inp.flag(10) and outputs:
        outputs.append(outputs[0])  # the same output twice
    run_call(name, guard, inputs, outputs)


def run_call(name, guard, inputs, outputs):
    # Inputs: all the memory they can reach.  Outputs: their own bytes, which
    # fjffi zeroes or leaves alone, as one whole.
    ins_before = [memory(x) for x in inputs]
    outs_before = [o.tobytes() for o in outputs if not o.dtype.hasobject]
    try:
        fjffi.Call(name, REGISTRY, guard=guard).invoke(inputs, outputs)
        failed = False
    except ALLOWED:
        failed = True
        raise
    finally:
        expect([memory(x) for x in inputs] == ins_before, f"{name} changed an input")
        outs_after = [o.tobytes() for o in outputs if not o.dtype.hasobject]
        if failed:
            untouched = outs_after == outs_before
            zeroed = not any(any(o) for o in outs_after)
            expect(untouched or zeroed, f"{name} failed and left outputs half-written")
    check_results(name, inputs, outputs)


def check_results(name, inputs, outputs):
    """The exact results of the kernels whose results are known."""
    if name in ("noop", "raw_noop"):
        expect(all(not o.any() for o in outputs), f"{name} left output bytes")
    elif name == "write_one_byte_ok":
        raw = outputs[0].reshape(-1).view(np.uint8)
        expected = np.zeros_like(raw)
        expected[:1] = 0xAB
        expect(np.array_equal(raw, expected), "write_one_byte_ok wrote other bytes")
    elif name in ("negate", "add", "multiply"):
        ufunc = {"negate": np.negative, "add": np.add, "multiply": np.multiply}[name]
        with np.errstate(all="ignore"):
            expected = ufunc(*[np.asarray(x) for x in inputs])
        expect(np.array_equal(outputs[0], expected, equal_nan=expected.dtype.kind == "f"),
               f"{name} computed wrong results")
    elif name == "sum" and outputs[0].dtype.kind == "i":
        # Integer sums wrap the same in any order; float sums may not.
        expected = np.sum(np.asarray(inputs[0]), dtype=outputs[0].dtype)
        expect(outputs[0] == expected, "sum computed a wrong result")


def op_registry(inp: Input):
    """Register, look up and test membership of fuzzed names."""
    name = inp.take(inp.int(0, 12)).decode("utf-8", "surrogateescape") if inp.flag(80) else \
        inp.choice([None, 5, b"x", "", "a\0b", "\ud800"])
    reg = fjffi.Registry()
    try:
        expect((name in reg) is False, "a new registry holds a name")
    except ALLOWED as exc:  # `in` answers; like a dict, it does not raise
        raise Finding(f"{name!r} in a Registry raised {exc!r}") from exc
    reg.register(name, _testing.kernels()["raw_noop"][0])
    expect(reg.names() == [name] and name in reg and reg.get(name).name == name,
           "a registered name cannot be found")
    fjffi.Call(name, reg).invoke([], [])


OPERATIONS = [op_buffer, op_zeros, op_to_buffer, op_invoke, op_invoke, op_matched, op_call,
              op_registry]


def outcome(data: bytes) -> str:
    """"operation outcome" of one input, e.g. "op_invoke LayoutError"."""
    inp = Input(data)
    op = inp.choice(OPERATIONS)
    try:
        op(inp)
        return f"{op.__name__} ok"
    except Exception as exc:  # noqa: BLE001 -- every outcome has a name
        return f"{op.__name__} {type(exc).__name__}"


def one_input(data: bytes) -> None:
    """Run one fuzz input; raise Finding (or any disallowed exception) on a
    contract violation.  The allowed exceptions are swallowed."""
    inp = Input(data)
    try:
        inp.choice(OPERATIONS)(inp)
    except Finding:
        raise
    except ALLOWED:
        pass


# --- the driver ----------------------------------------------------------------

class Stats:
    def __init__(self, seconds, runs, findings_dir):
        self.start, self.seconds, self.runs = time.monotonic(), seconds, runs
        self.executions, self.findings, self.seen = 0, 0, set()
        self.findings_dir = findings_dir

    def run(self, data: bytes) -> None:
        self.executions += 1
        try:
            one_input(data)
        except Exception as exc:  # noqa: BLE001 -- every other exception is a finding
            self.record(data, exc)
        if self.executions == self.runs or time.monotonic() - self.start > self.seconds:
            self.report()
            os._exit(1 if self.findings else 0)  # libFuzzer's loop never returns

    def record(self, data: bytes, exc: BaseException) -> None:
        self.findings += 1
        # A kind of finding: the exception and the harness line it came through.
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
                 if f.filename == __file__]
        signature = (type(exc).__name__, lines[-1] if lines else 0)
        if signature not in self.seen:  # the first input of each kind is kept
            self.seen.add(signature)
            path = save(self.findings_dir, data)
            print(f"FINDING {type(exc).__name__}: {str(exc)[:200]} (input {path})", flush=True)

    def report(self) -> None:
        elapsed = time.monotonic() - self.start
        print(f"fuzz: {self.executions} executions in {elapsed:.0f} s, "
              f"{self.findings} findings ({len(self.seen)} distinct), 0 crashes", flush=True)


def save(folder, data: bytes) -> str:
    path = os.path.join(folder, hashlib.sha1(data).hexdigest()[:16])
    with open(path, "wb") as f:
        f.write(data)
    return path


def replays_clean(data: bytes) -> bool:
    try:
        one_input(data)
    except Exception:  # noqa: BLE001 -- any finding
        return False
    return True


def keep(work, corpus, seed=1, extra=20000):
    """Make corpus the shortest input of each operation outcome found in work,
    in corpus or in `extra` random inputs (libFuzzer cannot see outcomes decided
    in the uninstrumented core): a few dozen tiny files, none a finding."""
    import random

    rng = random.Random(seed)
    best = {}
    candidates = [read(p) for p in corpus_files(work) + corpus_files(corpus)]
    candidates += [rng.randbytes(rng.randint(0, 120)) for _ in range(extra)]
    for data in candidates:
        if not replays_clean(data):
            continue  # the kept corpus replays as a passing test
        key = outcome(data)
        if key not in best or (len(data), data) < (len(best[key]), best[key]):
            best[key] = data
    for path in corpus_files(corpus):
        os.remove(path)
    for data in best.values():
        save(corpus, data)
    print(f"fuzz: kept {len(best)} inputs in {corpus}:", ", ".join(sorted(best)))


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def corpus_files(folder):
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))]


def run_random(stats, corpus, seed):
    """Without atheris: the corpus, then random and mutated corpus inputs."""
    import random

    rng = random.Random(seed)
    seeds = [read(p) for p in corpus_files(corpus)]
    for data in seeds:
        stats.run(data)
    while True:
        if seeds and rng.random() < 0.5:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            stats.run(bytes(data))
        else:
            stats.run(rng.randbytes(rng.randint(0, 200)))


def run_atheris(stats, corpus, seed, work):
    import atheris

    # Coverage feedback: this harness and fjffi's pure-Python modules.
    for module in list(sys.modules.values()):
        name, path = getattr(module, "__name__", ""), str(getattr(module, "__file__", ""))
        if name.startswith("fjffi") and path.endswith(".py"):
            instrument_module(atheris, module)
    instrument_module(atheris, sys.modules[__name__])
    # -timeout: a hang is a finding, but a loaded machine must not make one.
    argv = [sys.argv[0], work, corpus, f"-seed={seed}", "-max_len=400", "-timeout=120",
            "-rss_limit_mb=4096", f"-artifact_prefix={stats.findings_dir}/"]
    atheris.Setup(argv, stats.run)
    atheris.Fuzz()


def instrument_module(atheris, module):
    for obj in list(vars(module).values()):
        functions = [obj] if callable(obj) and hasattr(obj, "__code__") else \
            [f for f in vars(obj).values() if hasattr(f, "__code__")] if isinstance(obj, type) \
            else []
        for f in functions:
            if getattr(f, "__module__", None) == module.__name__:
                atheris.instrument_func(f)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="time budget (default 60)")
    parser.add_argument("--runs", type=int, default=-1, help="stop after this many executions")
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto",
                        help="atheris when installed (auto), or plain random bytes")
    parser.add_argument("--corpus", default=os.path.join(here, "corpus"),
                        help="kept corpus, read only (default fuzz/corpus)")
    parser.add_argument("--work", help="folder for new inputs (default: a scratch folder)")
    parser.add_argument("--findings", help="folder for inputs that found something")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", metavar="WORK",
                        help="instead of fuzzing: rewrite the corpus as the shortest input of "
                        "each operation outcome in WORK and the corpus")
    args = parser.parse_args(argv)
    if args.keep:
        return keep(args.keep, args.corpus)
    work = args.work or tempfile.mkdtemp(prefix="fjffi-fuzz-work-")
    findings = args.findings or tempfile.mkdtemp(prefix="fjffi-fuzz-findings-")
    os.makedirs(work, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    stats = Stats(args.seconds, args.runs, findings)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
    print(f"fuzz: engine {engine}, corpus {args.corpus}, new inputs in {work}, "
          f"findings in {findings}", flush=True)
    if engine == "atheris":
        run_atheris(stats, args.corpus, args.seed, work)
    else:
        run_random(stats, args.corpus, args.seed)


if __name__ == "__main__":
    main()
