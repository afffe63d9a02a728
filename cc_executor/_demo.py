"""`cc-execute demo`: the library's main job, end to end, on a machine with no credentials.

A three-step task list runs through the real `claude` CLI, strictly one step
after another, each a fresh CLI process: (1) write a small Python project
(Write tool), (2) run it (Bash tool, allowed for that step only), (3) write its
README and report in JSON (`return_json`). Offline the model is
`cc_executor.testing.ScriptedModel` on 127.0.0.1 — the CLI, its tools, the
files and the processes are real, the model's answers are scripted; `--live`
runs the same prompts against the real model.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from .pipeline import TaskSpec
from .testing import ScriptedModel, Turn, structured_output, text, tool_use, tool_uses

__all__ = [
    "demo_script",
    "demo_steps",
]

WORDCOUNT = '''\
"""Count the words and lines of a text file: python3 wordcount.py FILE"""

import sys


def count(text):
    return len(text.split()), len(text.splitlines())


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        words, lines = count(f.read())
    print(f"{path}: {words} words, {lines} lines")
'''

SAMPLE = """\
Claude Code ran this task list.
Every step was a fresh CLI process,
and every process is gone now.
"""

README = """\
# wordcount

Counts the words and lines of a text file.

    python3 wordcount.py sample.txt

Written, run and documented by a cc_executor task list (`cc-execute demo`).
"""


def python_command() -> str:
    """How the Bash tool should call Python on this machine."""
    return "python3" if shutil.which("python3") else shlex.quote(sys.executable)


def demo_steps() -> list[TaskSpec]:
    run = f"{python_command()} wordcount.py sample.txt"
    return [
        TaskSpec(
            "Create a small Python project in the current directory: wordcount.py, a "
            "command-line program that prints '<file>: <words> words, <lines> lines' for the "
            "text file named as its first argument, and sample.txt, three short lines of "
            "text to try it on. Do not run anything yet.",
            name="write the project",
        ),
        TaskSpec(
            f"Run `{run}` with the Bash tool and say exactly what it printed.",
            name="run it",
            allowed_tools=["Bash"],
        ),
        TaskSpec(
            "Write README.md for this project: what it does and how to run it. Then report "
            "what you did.",
            name="document and report",
            return_json=True,
        ),
    ]


def demo_script(project: Path) -> list[Turn]:
    """The scripted model's answers to `demo_steps`, in order."""
    run = f"{python_command()} wordcount.py sample.txt"
    write: list[tuple[str, dict[str, Any]]] = [
        ("Write", {"file_path": str(project / "wordcount.py"), "content": WORDCOUNT}),
        ("Write", {"file_path": str(project / "sample.txt"), "content": SAMPLE}),
    ]
    return [
        # step 1
        tool_uses(write),
        text("I created wordcount.py (the word counter) and sample.txt (three lines to try)."),
        # step 2
        tool_use("Bash", {"command": run, "description": "Run the word counter"}),
        text("The program ran; its output is in the tool result above."),
        # step 3
        tool_use("Write", {"file_path": str(project / "README.md"), "content": README}),
        structured_output(
            {
                "result": "README.md written",
                "summary": "wordcount.py counts words and lines; sample.txt tries it; "
                "README.md says how to run it.",
            }
        ),
    ]


def scripted_model(project: Path) -> ScriptedModel:
    return ScriptedModel(demo_script(project)).start()
