"""Bảng điều khiển quốc gia: the ministry dashboard (Streamlit).

Started by `vaxrecon dashboard --state URL`; reads only the run history's
aggregates (VAXRECON_STATE, VAXRECON_DEADLINE in the environment).
"""

from __future__ import annotations

import datetime as dt
import io
import os

import pandas as pd
import streamlit as st

from pipeline.dashboard.data import (
    CODE_VI,
    STATUS_VI,
    deadline_table,
    default_deadline,
    load_history,
    national_table,
    province_codes_over_time,
    province_names,
    unresolved_series,
)
from pipeline.report import safe_text
from pipeline.rules import ALL_CODES, STATUSES


def _downloads(frame: pd.DataFrame, stem: str, key: str) -> None:
    """The table as CSV (UTF-8 with BOM) and XLSX, every text cell safe to open in Excel."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or str(safe[col].dtype).startswith("str"):
            safe[col] = safe[col].map(lambda v: safe_text(v) if isinstance(v, str) else v)
    left, right = st.columns(2)
    left.download_button("Tải CSV", safe.to_csv(index=False).encode("utf-8-sig"), f"{stem}.csv", "text/csv",
                         key=f"{key}-csv")
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="xlsxwriter",
                        engine_kwargs={"options": {"strings_to_formulas": False, "strings_to_urls": False}}) as xl:
        safe.to_excel(xl, index=False, sheet_name="Số liệu")
    right.download_button("Tải XLSX", buf.getvalue(), f"{stem}.xlsx",
                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key=f"{key}-xlsx")


def main() -> None:
    st.set_page_config(page_title="Đối chiếu tiêm chủng – toàn quốc", layout="wide")
    st.title("Đối chiếu dữ liệu tiêm chủng với CSDL quốc gia về dân cư")
    url = os.environ.get("VAXRECON_STATE", "")
    if not url:
        st.error("Chưa chỉ định kho trạng thái (VAXRECON_STATE). Hãy chạy: vaxrecon dashboard --state URL")
        return
    history = load_history(url)
    if history.empty:
        st.warning("Chưa có lần chạy thành công nào trong kho trạng thái.")
        return
    names = province_names()
    env_deadline = os.environ.get("VAXRECON_DEADLINE")
    deadline = dt.date.fromisoformat(env_deadline) if env_deadline else default_deadline(history)
    st.caption("Chỉ số liệu tổng hợp: không có tên, ngày sinh hay số định danh của bất kỳ ai. "
               "Dòng «đã xác minh» là dòng khớp hoàn toàn với CSDL dân cư; mọi dòng khác là «chưa giải quyết».")
    national, deadline_tab, province_tab = st.tabs(["Toàn quốc", "Tiến độ đến hạn", "Theo tỉnh"])
    with national:
        national_view(history, names)
    with deadline_tab:
        deadline_view(history, names, deadline)
    with province_tab:
        province_view(history, names)


def national_view(history, names) -> None:
    table = national_table(history, pd.Timestamp.now(tz="UTC"), names)
    total_rows, verified = int(table["Số dòng"].sum()), int(table[f"Dòng: {STATUS_VI['matched']}"].sum())
    a, b, c, d = st.columns(4)
    a.metric("Số dòng mũi tiêm", f"{total_rows:,}".replace(",", "."))
    b.metric("Tỷ lệ đã xác minh", f"{100 * verified / max(total_rows, 1):.1f} %")
    c.metric("Tồn đọng xem xét (ca)", f"{int(table['Tồn đọng xem xét (ca)'].sum()):,}".replace(",", "."))
    stale = table[table["Quá hạn (> 24 giờ)"] != ""]
    d.metric("Tỉnh quá hạn chạy", len(stale))
    if len(stale):
        st.warning("Tỉnh không có lần chạy thành công trong 24 giờ qua: " + ", ".join(stale["Tỉnh"]))
    if len(history.failed):
        st.info(f"Số lần chạy tỉnh bị lỗi trong lịch sử: {len(history.failed)}")
    st.subheader("Tỷ lệ dòng đã xác minh theo tỉnh (%)")
    st.bar_chart(table.set_index("Tỉnh")["Tỷ lệ đã xác minh (%)"])
    st.subheader("Số dòng theo mã lỗi")
    st.bar_chart(table.set_index("Tỉnh")[[CODE_VI[c] for c in ALL_CODES]])
    st.subheader("Chi tiết theo tỉnh (bấm tiêu đề cột để sắp xếp)")
    st.dataframe(table, hide_index=True, width="stretch")
    _downloads(table, "toan_quoc", "national")


def deadline_view(history, names, deadline: dt.date) -> None:
    st.subheader(f"Số dòng chưa giải quyết qua các lần chạy – hạn chót {deadline.strftime('%d/%m/%Y')}")
    daily = unresolved_series(history)
    chart = daily.rename(columns={c: f"{c} – {names.get(c, '?')}" for c in daily.columns if c != "Toàn quốc"})
    st.line_chart(chart)
    table = deadline_table(history, deadline, names)
    late = table[table["Đánh giá"] == "KHÔNG KỊP"]
    if len(late):
        st.error("Dự kiến không kịp hạn: " + ", ".join(late["Tỉnh"]))
    else:
        st.success("Theo tốc độ hiện tại, không tỉnh nào dự kiến trễ hạn.")
    st.caption("Dự kiến: đường thẳng khớp với tối đa 7 lần chạy gần nhất, kéo dài đến khi hết dòng chưa giải quyết.")
    st.dataframe(table, hide_index=True, width="stretch")
    _downloads(table, "tien_do_den_han", "deadline")
    _downloads(daily.reset_index().rename(columns={"run_date": "Ngày chạy"}), "chua_giai_quyet_theo_ngay", "daily")


def province_view(history, names) -> None:
    codes = sorted(history.runs["province"].unique())
    province = st.selectbox("Tỉnh", codes, format_func=lambda c: f"{c} – {names.get(c, '?')}")
    over_time = province_codes_over_time(history, province)
    st.subheader("Số dòng theo mã lỗi qua các lần chạy")
    st.line_chart(over_time[[CODE_VI[c] for c in ALL_CODES]])
    st.subheader("Số dòng theo trạng thái qua các lần chạy")
    st.line_chart(over_time[list(STATUSES)].rename(columns=STATUS_VI))
    shown = over_time.reset_index().rename(columns={"run_date": "Ngày chạy", "rows": "Số dòng",
                                                    "unresolved": "Chưa giải quyết",
                                                    "review_cases": "Tồn đọng xem xét (ca)", **STATUS_VI})
    shown["Ngày chạy"] = shown["Ngày chạy"].dt.strftime("%d/%m/%Y")
    st.dataframe(shown, hide_index=True, width="stretch")
    _downloads(shown, f"tinh_{province}", "province")


main()
