"""One command's log says each thing once: a quantize builds several graphs from one model and
each build logged the same preparation line again."""

from __future__ import annotations

import logging

from app.cli.main import setup_logging


def test_a_message_is_logged_once_per_command_and_again_in_the_next(capsys):
    log = logging.getLogger("app.core.quant.test")
    setup_logging()
    for _ in range(3):
        log.info("space-to-depth folded into Conv_41")
    log.info("another line")
    assert capsys.readouterr().err.splitlines() == [
        "INFO: space-to-depth folded into Conv_41",
        "INFO: another line",
    ]
    setup_logging()  # the next command
    log.info("space-to-depth folded into Conv_41")
    assert "folded" in capsys.readouterr().err
    setup_logging(verbose=True)  # -v: every record
    log.info("x")
    log.info("x")
    assert capsys.readouterr().err.count("INFO: x") == 2
    setup_logging()
