"""Isolated targets: the kernel runs in a worker process, so that a crash or
a hang in it becomes an exception in the caller.

The caller registers an IsolatedRunner as a callback that writes the
outputs itself (``takes_outputs``): fjffi._core validates the buffers and
zeroes the outputs as for any target, then hands the runner the input
views and the output arrays.  The runner copies the inputs into a shared
memory segment it owns, sends the worker a small message (shapes, dtypes,
offsets), and the worker calls the kernel with ``fjffi.Call.invoke`` on
arrays over the same segment, so the same validation and zeroing run there
too; then the runner copies the outputs back.  Array data is never pickled.

A worker is started with the "forkserver" start method (never a fork of
the threaded caller), replays the target's KernelSpec in a registry of its
own, and serves calls until its pipe closes.  If it dies during a call
(signal or exit), the call raises TargetCrashedError; if it does not answer
within the timeout it is killed and the call raises TargetTimeoutError.
Either way the next call starts a fresh worker.

Order: each runner has a fixed number of workers (1 by default); a call
takes an idle one, and calls waiting for a worker are served in arrival
order (queue.Queue wakes its waiters first come, first served).  With one
worker the calls to a target therefore run one at a time, in arrival order.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import select
import struct
import weakref
from multiprocessing import spawn
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from fjffi.errors import (
    CallFailedError,
    DuplicateTargetError,
    TargetCrashedError,
    TargetTimeoutError,
)

__all__ = ["IsolatedRunner", "register_isolated", "register_isolated_spec"]

# Offsets of the buffers in the shared segment are multiples of this, so
# every array there is aligned for any dtype (and for SIMD loads).
ALIGN = 64
MIN_SEGMENT = 1 << 20
# A worker that cannot start and replay its spec in this time is a failure.
START_TIMEOUT = 60.0


WORKER_PREFIX = "fjffi-isolated-"


def context():
    """The forkserver context, with this module preloaded in the server so a
    new worker starts by a fork of a process that already imported fjffi
    (a restart after a crash costs milliseconds, not an interpreter start).

    __main__ is taken off the preload list: the server would run the
    caller's script, which may register isolated targets at top level.  In
    a forked child of a process that started the forkserver, the server is
    not its own to use, so workers start with "spawn" there."""
    if forked:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_address", 1) is None:
        preload = [m for m in getattr(server, "_preload_modules", []) if m != "__main__"]
        if __name__ not in preload:
            ctx.set_forkserver_preload(preload + [__name__])
    return ctx


forked = False


def mark_forked() -> None:
    global forked
    forked = True


os.register_at_fork(after_in_child=mark_forked)


def preparation_data_without_main(name, _get=spawn.get_preparation_data):
    """spawn.get_preparation_data, but a worker of an isolated target does
    not import the caller's __main__: it runs only fjffi code, and a script
    without an ``if __name__ == "__main__"`` guard would run again in it."""
    data = _get(name)
    if str(name).startswith(WORKER_PREFIX):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


if getattr(spawn.get_preparation_data, "__name__", "") != "preparation_data_without_main":
    spawn.get_preparation_data = preparation_data_without_main


class Worker:
    """One worker process and the shared segment it computes in.

    Used by one thread at a time (the runner's queue hands it out)."""

    def __init__(self, spec, public_name: str):
        self.spec = spec
        self.public_name = public_name
        self.process = None
        self.conns = ()
        self.fd = self.write_fd = -1
        self.poller = None
        self.segment: SharedMemory | None = None
        self.segment_sent = False  # whether the worker has attached self.segment
        # A forked child inherits this object but not the right to talk to
        # the parent's worker or to unlink its segment.
        self.owner_pid = os.getpid()

    def forget_if_forked(self) -> None:
        if self.owner_pid == os.getpid():
            return
        for conn in self.conns:
            conn.close()  # this process's copies only
        if self.process is not None:
            # Or multiprocessing's exit handler here would terminate the
            # parent's worker, a daemon it lists among this process's children.
            multiprocessing.process._children.discard(self.process)
        self.process, self.conns, self.segment, self.segment_sent = None, (), None, False
        self.owner_pid = os.getpid()

    def start(self) -> None:
        ctx = context()
        # Two pipes rather than a socket pair: a pipe wakes the reader faster.
        child_reader, parent_writer = ctx.Pipe(duplex=False)
        parent_reader, child_writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=worker_main, args=(child_reader, child_writer, self.spec),
                              daemon=True, name=WORKER_PREFIX + self.public_name)
        process.start()
        child_reader.close()  # so the worker's death is an EOF here
        child_writer.close()
        self.process, self.conns, self.segment_sent = process, (parent_reader, parent_writer), False
        self.fd, self.write_fd = parent_reader.fileno(), parent_writer.fileno()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        reply = self.receive(START_TIMEOUT)
        if reply is None:
            status = self.stop()
            raise RuntimeError(f"isolated target {self.public_name!r}: the worker died while "
                               f"starting (exit code {status})")
        if reply is False:
            self.stop(hung=True)
            raise RuntimeError(f"isolated target {self.public_name!r}: the worker did not "
                               f"start within {START_TIMEOUT} s")
        if reply:
            self.stop()
            raise pickle.loads(reply)

    def receive(self, timeout: float | None):
        """The worker's next message; None if it died, False on timeout."""
        if timeout is not None and not self.poller.poll(timeout * 1000.0):
            return False
        try:
            return receive_message(self.fd)
        except OSError:
            return None

    def stop(self, *, hung: bool = False) -> int | None:
        """Kill the worker if it runs; its exit code.  hung: it is known
        not to be exiting on its own, so kill it at once."""
        process, conns = self.process, self.conns
        self.process, self.conns = None, ()
        for conn in conns:
            conn.close()
        if process is None:
            return None
        if process.exitcode is None and not hung:
            process.join(0.5)  # it may be exiting on its own (a crash being reported)
        if process.exitcode is None:
            process.kill()
            process.join()
        status = process.exitcode
        process.close()
        return status

    def close(self) -> None:
        self.forget_if_forked()
        self.stop()
        if self.segment is not None:
            self.segment.close()
            self.segment.unlink()
            self.segment = None

    def ensure_segment(self, nbytes: int) -> None:
        if self.segment is not None and self.segment.size >= nbytes:
            return
        size = max(nbytes, MIN_SEGMENT)
        if self.segment is not None:
            size = max(size, 2 * self.segment.size)  # grow geometrically
            self.segment.close()
            self.segment.unlink()
            self.segment = None
        self.segment = SharedMemory(create=True, size=size)
        self.segment_sent = False

    def run(self, inputs: tuple, outputs: tuple, timeout: float | None) -> None:
        self.forget_if_forked()
        if self.process is None:
            self.start()
        layout, offset = [], 0
        for arr in inputs + outputs:
            dtype = arr.dtype
            # A numpy dtype travels as its short string (cheaper to pickle);
            # one from elsewhere (ml_dtypes) as itself.
            layout.append((offset, dtype.str if dtype.isbuiltin == 1 else dtype, arr.shape))
            offset += -(-arr.nbytes // ALIGN) * ALIGN
        self.ensure_segment(offset)
        buf = self.segment.buf
        # layout goes on past the inputs with the outputs, written back below.
        for arr, (start, dtype, shape) in zip(inputs, layout, strict=False):
            np.ndarray(shape, dtype, buffer=buf, offset=start)[...] = arr
        name = None if self.segment_sent else self.segment.name
        n = len(inputs)
        message = pickle.dumps((name, layout[:n], layout[n:]), protocol=5)
        try:
            send_message(self.write_fd, message)
            self.segment_sent = True
            reply = self.receive(timeout)
        except OSError:
            reply = None  # the worker died before the call (killed while idle)
        except BaseException:
            # Interrupted (KeyboardInterrupt) with a reply still to come: a
            # worker out of step with its caller is no use any more.
            self.stop()
            raise
        if reply is False:
            self.stop(hung=True)
            raise TargetTimeoutError(self.public_name, timeout)
        if reply is None:
            status = self.stop()
            if status is not None and status < 0:
                raise TargetCrashedError(self.public_name, -status)
            raise TargetCrashedError(self.public_name, None, status)
        if reply:
            raise pickle.loads(reply)
        for arr, (start, dtype, shape) in zip(outputs, layout[n:], strict=True):
            arr[...] = np.ndarray(shape, dtype, buffer=buf, offset=start)


# Messages on a worker's pipes: a 4-byte length, then that many bytes.  The
# two sides take turns, so a read never sees more than one message.
HEADER = struct.Struct("<I")
READ_SIZE = 1 << 16


def send_message(fd: int, payload: bytes) -> None:
    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def receive_message(fd: int) -> bytes | None:
    """The payload of the next message, or None at EOF."""
    data = os.read(fd, READ_SIZE)
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = os.read(fd, READ_SIZE)
        if not more:
            return None
        data += more
    return data[HEADER.size:]


class IsolatedRunner:
    """The callable an isolated target is registered as (see the module doc).

    takes_outputs tells fjffi._core to call it with (input views, output
    arrays) and let it write the outputs.
    """

    takes_outputs = True

    def __init__(self, spec, public_name: str, timeout: float | None, workers: int = 1):
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, "
                             f"not {timeout!r}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers!r}")
        self.spec = spec
        self.name = public_name
        self.timeout = timeout
        self.workers = [Worker(spec, public_name) for _ in range(workers)]
        self.idle: queue.Queue = queue.Queue()
        for worker in self.workers:
            self.idle.put(worker)
        self.closed = False
        # Workers stop and segments are unlinked when the runner goes (its
        # registry was dropped) or at exit, whichever comes first.
        self.finalizer = weakref.finalize(self, close_workers, self.workers)
        # A fork in the middle of another thread's call leaves that worker
        # out of the queue in the child: the child starts with all of them.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: reset_after_fork(ref()))

    def __repr__(self):
        return (f"IsolatedRunner({self.name!r}, {self.spec.describe()}, timeout={self.timeout}, "
                f"workers={len(self.workers)})")

    def start(self) -> None:
        """Start one worker now, so a spec that cannot be replayed fails at
        registration rather than at the first call."""
        worker = self.idle.get()
        try:
            if worker.process is None:
                worker.start()
        finally:
            self.idle.put(worker)

    def __call__(self, inputs: tuple, outputs: tuple) -> None:
        if self.closed:
            raise CallFailedError(self.name, -1, "its isolated runner was closed")
        worker = self.idle.get()
        try:
            worker.run(inputs, outputs, self.timeout)
        finally:
            self.idle.put(worker)

    def close(self) -> None:
        """Stop the workers and free the shared memory (at exit, too)."""
        self.closed = True
        self.finalizer()


def reset_after_fork(runner) -> None:
    if runner is None:
        return
    runner.idle = queue.Queue()
    for worker in runner.workers:
        worker.forget_if_forked()
        runner.idle.put(worker)


def close_workers(workers) -> None:
    for worker in workers:
        worker.close()


def worker_main(reader, writer, spec) -> None:
    """The worker process: replay the spec, then serve calls until EOF."""
    try:
        import resource

        # A crashing kernel is expected here: no core file per crash.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    import fjffi

    registry = fjffi.Registry()
    try:
        spec.register(registry)
    except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller
        send_message(writer.fileno(), picklable(exc, spec.name))
        return
    call = fjffi.Call(spec.name, registry)
    fd, write_fd = reader.fileno(), writer.fileno()
    send_message(write_fd, b"")
    segment = None
    # The arrays of the last message, reused while the same layout comes
    # again (the common case: one call site, one shape).
    last, inputs, outputs = None, (), ()
    while True:
        try:
            message = receive_message(fd)
        except OSError:
            break
        if message is None:
            break
        if message != last:
            name, in_layout, out_layout = pickle.loads(message)
            inputs = outputs = ()  # no view may outlive its segment
            if name is not None:
                if segment is not None:
                    segment.close()
                # Attaching registers the name with the resource tracker the
                # worker shares with the caller, where it is already
                # registered (a set): the caller's unlink unregisters it.
                segment = SharedMemory(name=name)
            buf = segment.buf
            inputs = tuple(np.ndarray(shape, dtype, buffer=buf, offset=start)
                           for start, dtype, shape in in_layout)
            outputs = tuple(np.ndarray(shape, dtype, buffer=buf, offset=start)
                            for start, dtype, shape in out_layout)
            del buf
            last = message
        try:
            call.invoke(inputs, outputs)
            reply = b""
        except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller
            reply = picklable(exc, spec.name)
        send_message(write_fd, reply)
    inputs = outputs = ()
    if segment is not None:
        segment.close()


def picklable(exc: Exception, name: str) -> bytes:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        return pickle.dumps(CallFailedError(name, 1, f"{type(exc).__name__}: {exc}"))


def register_isolated_spec(spec, registry, *, timeout=None, workers=1, name=None):
    """Register spec's kernel under name (default spec.name) as an isolated
    target of registry; idempotent like KernelSpec.register."""
    public = spec.name if name is None else name
    if public in registry:
        return spec.check_holds(registry, name=public, isolated=True, timeout=timeout)
    runner = IsolatedRunner(spec, public, timeout, workers)
    try:
        runner.start()
        return registry.register_callback(public, runner, flavor="pure")
    except DuplicateTargetError:
        runner.close()
        return spec.check_holds(registry, name=public, isolated=True, timeout=timeout)
    except BaseException:
        runner.close()
        raise


def register_isolated(name_or_spec, *, name=None, timeout=None, workers=1, registry=None):
    """Register a kernel as an isolated target: it runs in a worker process,
    and a crash (signal, exit) or a call past timeout seconds raises
    TargetCrashedError or TargetTimeoutError in the caller instead of
    killing or blocking it.

    name_or_spec: a KernelSpec, or the name of a target registered in
    registry, whose spec (fjffi.spec) is used.  name: the name to register
    under; by default the spec's name, or for a target name ``name +
    ".isolated"`` (the target itself holds its name).  workers: how many
    worker processes serve calls to it (calls beyond that wait, first come,
    first served).  Returns the Target (kind "callback"; its
    ``owner.fn`` is the IsolatedRunner).
    """
    from fjffi._core import default_registry
    from fjffi._spec import KernelSpec, spec

    if registry is None:
        registry = default_registry
    if isinstance(name_or_spec, KernelSpec):
        kernel = name_or_spec
    elif isinstance(name_or_spec, str):
        kernel = spec(name_or_spec, registry)
        if name is None:
            name = name_or_spec + ".isolated"
    else:
        raise TypeError(f"register_isolated takes a KernelSpec or a target name, "
                        f"not {type(name_or_spec).__name__}")
    return register_isolated_spec(kernel, registry, timeout=timeout, workers=workers, name=name)


def is_isolated(target) -> bool:
    """Whether a Target record is an isolated target."""
    fn = getattr(target.owner, "fn", None)
    return isinstance(fn, IsolatedRunner)

