"""``solsa tasks``: the bundled tasks and encoders."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list the tasks and encoders")
    p.set_defaults(func=_run_tasks)


def _run_tasks(args) -> int:
    from ..tasks import encoder_defaults, list_encoders, list_tasks

    print("tasks (--task):")
    for name, desc in list_tasks():
        print(f"  {name:<14} {desc}")
    print("encoders (--encoder):")
    for name, desc in list_encoders():
        print(f"  {name:<14} {desc}")
        options = ", ".join(f"{key}={value}" for key, value in encoder_defaults(name).items())
        print(f"  {'':<14} options (--task-option KEY=VALUE): {options or 'none'}")
    return 0
