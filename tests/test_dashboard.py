"""The ministry dashboard: its numbers, its views as AppTest renders them, and the page in a real browser."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from pipeline.dashboard.data import History, deadline_table, load_history, national_table, project

from .conftest import SAMPLE

APP = Path(__file__).resolve().parent.parent / "pipeline" / "dashboard" / "app.py"
NIGHTS = [dt.date(2022, 5, 25) + dt.timedelta(days=k) for k in range(3)]


@pytest.fixture(scope="module")
def nights_state(tmp_path_factory):
    """State store after three nights on the sample, officers fixing errors between nights."""
    from flows.nightly import nightly_reconciliation
    from pipeline.synth.nights import write_nights

    root = tmp_path_factory.mktemp("nights")
    folders = write_nights(SAMPLE, root / "nights", len(NIGHTS))
    out = root / "out"
    for exports, night in zip(folders, NIGHTS, strict=True):
        nightly_reconciliation(SAMPLE / "registry.parquet", exports, out, ["01", "66"], night, validate=False)
    return f"sqlite:///{out / 'state.sqlite'}"


def test_the_history_shows_errors_going_down_night_after_night(nights_state):
    history = load_history(nights_state)
    assert sorted(history.runs["province"].unique()) == ["01", "66"]
    unresolved = history.runs[history.runs["province"] == "01"].sort_values("run_date")["unresolved"].tolist()
    assert len(unresolved) == 3 and unresolved[0] > unresolved[1] > unresolved[2]
    table = national_table(history, pd.Timestamp.now(tz="UTC"), {"01": "Hà Nội", "66": "Đắk Lắk"})
    assert table["Tỉnh"].tolist() == ["01 – Hà Nội", "66 – Đắk Lắk"]
    assert (table["Quá hạn (> 24 giờ)"] == "").all()
    later = national_table(history, pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=25), {})
    assert (later["Quá hạn (> 24 giờ)"] == "QUÁ HẠN").all()


def test_projection_reaches_zero_at_the_recent_rate_and_flags_a_late_province():
    days = pd.to_datetime(["2022-05-25", "2022-05-26", "2022-05-27"])
    fast = project(pd.Series([300.0, 200.0, 100.0], index=days), dt.date(2022, 6, 1))
    assert fast["zero_on"] == dt.date(2022, 5, 28) and fast["misses_deadline"] is False
    slow = project(pd.Series([300.0, 290.0, 280.0], index=days), dt.date(2022, 6, 1))
    assert slow["zero_on"] == dt.date(2022, 6, 24) and slow["misses_deadline"] is True
    flat = project(pd.Series([50.0, 60.0, 55.0], index=days), dt.date(2022, 6, 1))
    assert flat["zero_on"] is None and flat["misses_deadline"] is True
    single = project(pd.Series([50.0], index=days[:1]), dt.date(2022, 6, 1))
    assert single["misses_deadline"] is None


def test_deadline_table_covers_every_province_and_the_nation(nights_state):
    history = load_history(nights_state)
    table = deadline_table(history, dt.date(2022, 6, 1), {"01": "Hà Nội"})
    assert table["Tỉnh"].tolist()[-1] == "Toàn quốc"
    assert set(table["Đánh giá"]) <= {"kịp hạn", "KHÔNG KỊP", "chưa đủ số liệu"}
    national = table[table["Tỉnh"] == "Toàn quốc"].iloc[0]
    assert national["Chưa giải quyết (dòng)"] == history.runs[history.runs["run_date"] == history.runs["run_date"].max()][
        "unresolved"].sum()


def _app(state: str, deadline: str | None = None):
    from streamlit.testing.v1 import AppTest

    os.environ["VAXRECON_STATE"] = state
    if deadline:
        os.environ["VAXRECON_DEADLINE"] = deadline
    else:
        os.environ.pop("VAXRECON_DEADLINE", None)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _page_text(at) -> str:
    """Every text and table value the views render."""
    parts = []
    for kind in ("title", "subheader", "caption", "markdown", "error", "warning", "success", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [df.value.to_csv() for df in at.dataframe]
    parts += [" ".join(map(str, s.options)) for s in at.selectbox]
    return "\n".join(parts)


def _personal_values() -> set[str]:
    reg = pd.read_parquet(SAMPLE / "registry.parquet")
    dob = pd.to_datetime(reg["date_of_birth"]).dropna()
    return (set(reg["person_id"]) | set(reg["old_id"].dropna()) | set(reg["full_name"])
            | set(dob.dt.strftime("%d/%m/%Y")) | set(dob.dt.strftime("%Y-%m-%d")))


def test_every_view_renders_in_vietnamese_and_the_province_view_follows_the_choice(nights_state):
    at = _app(nights_state, "2022-06-01")
    assert [t.label for t in at.tabs] == ["Toàn quốc", "Tiến độ đến hạn", "Theo tỉnh"]
    assert at.metric[0].label == "Số dòng mũi tiêm"
    text = _page_text(at)
    for expected in ("01 – Hà Nội", "66 – Đắk Lắk", "Tỷ lệ đã xác minh", "Hạn chót", "01/06/2022", "Toàn quốc"):
        assert expected in text
    assert len(at.get("download_button")) >= 6
    first = at.dataframe[-1].value.copy()
    at.selectbox[0].set_value("66").run()
    assert not at.exception
    assert not at.dataframe[-1].value.equals(first)
    assert at.dataframe[-1].value["Số dòng"].iloc[0] == 295


def test_no_view_shows_personal_data(nights_state):
    at = _app(nights_state)
    pages = [_page_text(at)]
    for code in at.selectbox[0].options:
        at.selectbox[0].set_value(code.split(" ")[0] if " " in code else code).run()
        pages.append(_page_text(at))
    text = "\n".join(pages)
    leaked = {v for v in _personal_values() if v and v in text}
    assert leaked == set()
    assert not re.search(r"\b\d{12}\b", text), "no 12-digit number (an ID) on any view"


def test_dashboard_without_history_says_so(tmp_path):
    at = _app(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    assert "Chưa có lần chạy" in at.warning[0].value
    assert isinstance(load_history(f"sqlite:///{tmp_path / 'empty.sqlite'}"), History)


# ---------------------------------------------------------------- in a real browser

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


class _Chromium:
    """Headless Chromium driven through the DevTools protocol."""

    def __init__(self, url: str, profile: Path) -> None:
        from websockets.sync.client import connect

        port = _free_port()
        self.proc = subprocess.Popen(
            [shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
             "--window-size=1400,1800", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_http(f"http://127.0.0.1:{port}/json/version")
        pages = []
        for _ in range(50):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in json.load(resp) if t["type"] == "page"]
            if pages:
                break
            time.sleep(0.1)
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=50_000_000)
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                return msg.get("result", {})

    def text(self) -> str:
        res = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
        return res.get("result", {}).get("value", "")

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait()


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (make test installs it where it can: root and apt)")
def test_the_dashboard_in_headless_chromium(nights_state, tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "dashboard", "--state", nights_state,
                               "--port", str(port), "--deadline", "2022-06-01"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    browser = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        browser = _Chromium(f"http://127.0.0.1:{port}/", Path(tempfile.mkdtemp(dir=tmp_path)))
        deadline, text = time.time() + 90, ""
        while time.time() < deadline:
            text = browser.text()
            if "Đắk Lắk" in text and "Tỷ lệ đã xác minh" in text:
                break
            time.sleep(0.5)
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        (tmp_path / "dashboard.png").write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
        for expected in ("Đối chiếu dữ liệu tiêm chủng", "Toàn quốc", "Tiến độ đến hạn", "Theo tỉnh",
                         "Số dòng mũi tiêm", "01 – Hà Nội", "66 – Đắk Lắk"):
            assert expected in text, expected
        assert {v for v in _personal_values() if v and v in text} == set()
    finally:
        if browser is not None:
            browser.close()
        os.killpg(server.pid, signal.SIGTERM)   # the server and anything it started
        server.wait(timeout=10)
