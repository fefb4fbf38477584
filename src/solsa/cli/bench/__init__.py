"""``solsa bench``: the command-line entry of the benchmarks (memory, workload, speed, peers, stream, longrun,
device, accuracy).

Every sub-command writes a JSON result (``--out``) and a plot beside it (same
name, ``.png``), prints a short summary, and takes ``--quick`` for a smoke run
of a few seconds (tiny network, short sequences, few repeats).
"""


from .device import _add_accuracy, _add_device
from .memory import _add_memory, _add_workload
from .peers import _add_peers
from .speed import _add_speed
from .stream import _add_longrun, _add_stream

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Register ``solsa bench memory|workload|speed|peers|stream|longrun|device|accuracy`` on the ``solsa``
    sub-command parser."""
    p = sub.add_parser("bench", help="benchmarks: memory, workload, speed, peers, stream, longrun, device, accuracy")
    bench = p.add_subparsers(dest="bench", required=True)
    _add_memory(bench)
    _add_workload(bench)
    _add_speed(bench)
    _add_peers(bench)
    _add_stream(bench)
    _add_longrun(bench)
    _add_device(bench)
    _add_accuracy(bench)
