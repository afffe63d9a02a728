"""cc_executor as an MCP server, for an orchestrating agent (Claude Code, or any MCP client).

``python -m cc_executor.mcp [options]`` serves these tools over stdio:
``check_executor_status``, ``get_task_complexity``, ``suggest_execution_strategy``,
``execute_task``, ``execute_task_list``, ``get_execution_history`` and
``verify_execution``; and the prompt ``cc_execute`` (the orchestrator prompt).
Needs the optional extra: ``pip install 'cc_executor[mcp]'``.

Where a run's options come from, lowest first:

1. the library's defaults (`CCExecutorConfig`) and its environment variables:
   ``CC_EXECUTOR_CLI`` (the ``claude`` executable), ``CC_EXECUTOR_TRANSCRIPT_DIR``,
   ``CC_EXECUTOR_HOME`` (where records go by default);
   every run inherits the server's environment (the ``env`` of its ``.mcp.json``
   entry), so ``ANTHROPIC_API_KEY`` and friends set there reach the CLI;
2. ``--config FILE``: a JSON or YAML mapping of `CCExecutorConfig` fields;
3. the flags ``--cwd``, ``--transcript-dir``, ``--state-dir``,
   ``--permission-mode``, ``--model``, ``--timeout``;
4. per tool call, only what cannot widen the agent's permissions: the task, its
   ``timeout``, ``model``, ``return_json``, and a ``cwd`` inside the server's
   directory. Permission mode, allowed tools, env and CLI flags are fixed when
   the server starts.
"""

from ._main import client_config, create_server, main, server_config

__all__ = ["client_config", "create_server", "main", "server_config"]
