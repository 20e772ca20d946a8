"""The synchronous client is generated from the asynchronous one: this fails when someone edits
``client.py`` by hand or forgets to run ``tools/unasync.py`` after changing ``aio.py``."""

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "unasync.py"


def test_the_sync_client_is_what_unasync_makes_of_the_async_one():
    spec = importlib.util.spec_from_file_location("unasync", TOOL)
    unasync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unasync)
    assert unasync.main(["--check"]) == 0
