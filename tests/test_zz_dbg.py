from .test_app_gradients import *  # noqa
def test_dbg(app):
    at = _open(app)
    print("ERR", [e.value for e in at.error], "INFO", [e.value[:200] for e in at.info], "WARN", [e.value[:200] for e in at.warning])
    print([el.type for el in at.main])
    assert 0
