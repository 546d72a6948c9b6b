"""spicelearn: circuit-level simulation of physical learning in resistor networks.

The public API mirrors the command line::

    import spicelearn as sl
    ds = sl.train("lab16", "default", sl.Hardware.from_R(0.1, capacitance=22e-6), steps=3000)
    print(sl.summary(ds))
"""

__version__ = "0.2.0"

from .errors import ConfigError, NetworkError, SpiceError, SpicelearnError, TaskError  # noqa: E402
from .model.hardware import R0, Comparator, Hardware, Potentiometer  # noqa: E402
from .model.board import Board  # noqa: E402
from .model.network import CompiledNetwork, compile_network, load_network  # noqa: E402
from .model.task import Task, load_task, random_task  # noqa: E402
from .loop import replay, replay_run, train  # noqa: E402
from .runfile import load_run, save_run, summary, tau  # noqa: E402
from .continuous.ode import train_ode  # noqa: E402
from .continuous.quasistatic import train_quasistatic  # noqa: E402

__all__ = [
    "__version__", "train", "train_ode", "train_quasistatic", "replay", "replay_run", "Hardware", "Board",
    "Potentiometer", "Comparator", "R0", "CompiledNetwork", "compile_network", "load_network", "Task", "load_task",
    "random_task", "load_run", "save_run", "summary", "tau",
    "SpicelearnError", "NetworkError", "TaskError", "ConfigError", "SpiceError",
]
