"""The library's logger. Disabled by default, as loguru advises for libraries:
`from loguru import logger; logger.enable("cc_executor")` turns it on."""

from loguru import logger

logger.disable("cc_executor")

__all__ = ["logger"]
