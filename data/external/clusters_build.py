"""Build ``clusters_national.csv`` and ``clusters_provincial.csv`` (run: ``python data/external/clusters_build.py``).

Inputs (all in this folder):
- ``certified_clusters_partial.csv``: the 75 national rows assembled first (each with its source);
  ``RECODE`` below corrects or refines their industry coding, each change with its reason;
- ``clusters_sources.csv``: national rows found since, one per cluster, each with the source read
  and the project's industry coding (``industry_cic2``, ``industry_cic4``, ``related_cic2``,
  ``match_type``, ``match_rule``);
- ``clusters_provincial_sources.csv``: clusters certified by provinces (their own programmes),
  in the same form, with the provincial notice;
- ``clusters_county_codes_nbs2023.csv``: county-level codes of NBS 统计用区划代码 2023
  (as of 2023-06-30), taken from github.com/modood/Administrative-divisions-of-China
  ``dist/areas.csv`` at commit dc3a1d7 (that repository compiles the NBS tables).

Every row keeps its source; codes come only from the code table (a name that matches no county
of its province, or several, is left without a code and says so). Nothing is guessed: rows are
added only from sources read, and the CIC mapping is the project's hand mapping (``match_rule``),
not an official classification:

- ``industry_cic2``: the 2-digit CIC (GB/T 4754-2017) of the leading industry; empty when the
  leading industry is outside manufacturing (software, design, testing, logistics ...);
- ``industry_cic4``: 4-digit codes (``;``-separated) only where the leading industry names them
  clearly (白酒 -> 1512, 眼镜 -> 3587); empty otherwise;
- ``related_cic2``: other 2-digit industries the leading industry plainly spans (an alternative
  coding, or the manufacturing side of a service cluster); the ``related`` treatment band;
- ``match_type``: ``core`` (the leading industry is a manufacturing industry of ``industry_cic2``),
  ``related`` (a cross-industry or partly service theme placed in its nearest manufacturing
  industry), ``none`` (no manufacturing code).
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent

NOTICES = {
    2022: ("工信部企业函〔2023〕3号", "", "2023-01-11"),
    2023: ("工信部企业函〔2023〕283号", "2023-10-17", "2023-10-18"),
    2024: ("工信部企业函〔2024〕267号", "2024-09-19", "2024-09-20"),
    2025: ("(number not found)", "", "2025-11-05"),
}
# sources of the notice facts: 2022 http://usedcar.dizo.com.cn/jujiao/2023/0113/39076.html (工信微报 text,
# number 〔2023〕3号) and https://dg.feibaos.com/news/info/82765.html (published 2023-01-11); 2023
# http://bzlm.snnby.com/baizhan/52451.html (dated 2023-10-17, published 10-18); 2024
# http://ceccweb.org.cn/listshow.php?cid=68&id=1797 (dated 2024-09-19) and baiyin.gov.cn (2024-09-20);
# 2025: no notice number read; the 公示 was 2025-09-23 (http://www.xmqimo.com/news/cygh/2025/0930/24938.html);
# 四川日报 2025-11-05 and 江西日报 2025-11-06 report the final list.

# 2025 news: the 2022 batch re-review passed 97 of 100 and names these among those passing
PASSED_2025 = {
    "北京市海淀区行业应用软件产业集群": "http://www.360elib.com:2027/detail.aspx?NewsCode=NC342&NewsId=73999044&OrgId=001",
    "江苏省无锡市惠山区智能基础零部件制造产业集群": "http://www.360elib.com:2027/detail.aspx?NewsCode=NC342&NewsId=73999044&OrgId=001",
    "浙江省湖州市吴兴区智能物流装备产业集群": "http://www.360elib.com:2027/detail.aspx?NewsCode=NC342&NewsId=73999044&OrgId=001",
    "四川省成都市青羊区航空配套产业集群": "四川日报 2025-11-05 http://m.mikefa.com/n2/2025/1105/c345167-41401570.html",
    "成都市武侯区微波射频产业集群": "四川日报 2025-11-05 http://m.mikefa.com/n2/2025/1105/c345167-41401570.html",
}
# refinements of the first coding (mostly of certified_clusters_partial.csv, whose rows name the file as their rule)
# (batch, cluster name) -> fields to set; the match_rule says why
RECODE: dict[tuple[int, str], dict[str, str]] = {
    (2022, "广汉市油气钻采装备制造产业集群"): {
        "industry_cic4": "3512",
        "match_rule": "油气钻采装备 -> 3512 (石油钻采专用设备制造)",
    },
    (2022, "天津市滨海新区车规级芯片产业集群"): {
        "industry_cic4": "3973",
        "match_rule": "芯片 -> 3973 (集成电路制造)",
    },
    (2022, "深圳市南山区智能终端芯片设计产业集群"): {
        "related_cic2": "39",
        "match_rule": "芯片设计 is 6520 (services): no manufacturing code; chips 39 related",
    },
    (2022, "韶关市南雄市涂料产业集群"): {
        "industry_cic4": "2641",
        "match_rule": "涂料 -> 2641 (涂料制造)",
    },
    (2022, "深圳市宝安区锂电池设备制造产业集群"): {
        "related_cic2": "38",
        "match_rule": "锂电池设备 -> 35 (专用设备); batteries 38 related",
    },
    (2022, "广州市花都区箱包皮具产业集群"): {
        "industry_cic4": "1923",
        "match_rule": "箱包 -> 1923 (箱包制造)",
    },
    (2022, "河北省清河县羊绒及制品产业集群"): {
        "related_cic2": "18",
        "match_rule": "羊绒 -> 17 (172 毛纺织); cashmere garments 18 related",
    },
    (2022, "常熟市电子氟材料产业集群"): {
        "related_cic2": "39",
        "match_rule": "氟化工 -> 26; electronic materials 3985 related",
    },
    (2022, "溧阳市动力电池产业集群"): {
        "industry_cic4": "3841",
        "match_rule": "动力电池 -> 3841 (锂离子电池制造)",
    },
    (2022, "徐州市铜山区安全应急产业集群"): {
        "match_type": "related",
        "related_cic2": "34;36;37",
        "match_rule": "安全应急 is a cross-industry theme: nearest 35 (专用设备); 34, 36, 37 related",
    },
    (2022, "余江眼镜"): {
        "industry_cic4": "3587",
        "match_rule": "眼镜 -> 3587 (眼镜制造)",
    },
    (2022, "樟树金属家具"): {
        "industry_cic4": "2130",
        "match_rule": "金属家具 -> 2130 (金属家具制造)",
    },
    (2022, "萍乡湘东工业陶瓷"): {
        "industry_cic4": "3073",
        "match_rule": "工业陶瓷 -> 3073 (特种陶瓷制品制造)",
    },
    (2022, "赣州章贡线路板"): {
        "industry_cic4": "3982",
        "match_rule": "线路板 -> 3982 (电子电路制造)",
    },
    (2022, "河南省叶县尼龙材料产业集群"): {
        "related_cic2": "26",
        "match_rule": "尼龙 -> 28 (锦纶); nylon resin 2651 in 26 related",
    },
    (2022, "河南省新安县轴承制造产业集群"): {
        "industry_cic4": "3451;3452",
        "match_rule": "轴承 -> 3451;3452 (滚动 and 滑动轴承制造)",
    },
    (2022, "河南省襄城县碳硅新材料产业集群"): {
        "related_cic2": "26;32",
        "match_rule": "碳素 / 硅材料 -> 30 (石墨及碳素制品); silicon 26 or 32 related",
    },
    (2022, "晋江市运动鞋原辅材料产业集群"): {
        "related_cic2": "17;29",
        "match_rule": "鞋材 -> 19 (制鞋); textiles 17 and rubber or plastic soles 29 related",
    },
    (2022, "武平县显示模组及材料制造产业集群"): {
        "industry_cic4": "3974",
        "match_rule": "显示模组 -> 3974 (显示器件制造)",
    },
    (2022, "厦门市集美区工业机器人产业集群"): {
        "industry_cic4": "3491",
        "match_rule": "工业机器人 -> 3491 (工业机器人制造)",
    },
    (2022, "漳州市龙文区石英钟表产业集群"): {
        "industry_cic4": "4030",
        "match_rule": "钟表 -> 4030 (钟表与计时仪器制造)",
    },
    (2022, "仁怀酱香白酒"): {
        "industry_cic4": "1512",
        "match_rule": "白酒 -> 1512 (白酒制造)",
    },
    (2022, "正安吉他制造"): {
        "industry_cic4": "2422",
        "match_rule": "吉他 -> 2422 (西乐器制造)",
    },
    (2022, "贵阳高新区先进装备制造"): {
        "related_cic2": "34;37",
        "match_rule": "装备制造 -> 35 (专用设备); 34 and aero-engines 37 related (现代物流报 2023-02-27, http://news.xd56b.com/shtml/xdwlb/20230227/403283.shtml, describes a Guiyang 白云区 aero-engine cluster among Guizhou's 4, perhaps this one)",
    },
    (2023, "上海市嘉定区智能传感器产业集群"): {
        "industry_cic4": "3983",
        "match_rule": "传感器 -> 3983 (敏感元件及传感器制造)",
    },
    (2023, "上海市金山区无人机产业集群"): {
        "related_cic2": "39",
        "match_rule": "无人机 -> 37 (航空器); consumer drones 3963 in 39 related",
    },
    (2023, "上海市闵行区基因产业集群"): {
        "related_cic2": "27",
        "match_rule": "基因 (research services): no manufacturing code; 27 (2762 基因工程药物) related",
    },
    (2023, "南康现代家具"): {
        "industry_cic4": "2110",
        "match_rule": "现代家具 (solid wood) -> 2110 (木质家具制造)",
    },
    (2023, "南城校具(教育装备)"): {
        "related_cic2": "24",
        "match_rule": "校具 (school furniture) -> 21; education equipment 24 related",
    },
    (2024, "上海市奉贤区化妆品产业集群"): {
        "industry_cic4": "2682",
        "match_rule": "化妆品 -> 2682 (化妆品制造)",
    },
    (2024, "上海市浦东新区高端通用芯片设计产业集群"): {
        "related_cic2": "39",
        "match_rule": "芯片设计 is 6520 (services): no manufacturing code; chips 39 related",
    },
    (2024, "上海市松江区卫星互联网产业集群"): {
        "related_cic2": "37;39",
        "match_rule": "卫星互联网 (services): no manufacturing code; satellites 37 and equipment 39 related",
    },
    (2024, "上海市闵行区空间信息产业集群"): {
        "related_cic2": "39",
        "match_rule": "空间信息 (services): no manufacturing code; equipment 39 related",
    },
    (2024, "青山区光伏装备产业集群"): {
        "related_cic2": "38",
        "match_rule": "光伏装备 -> 35 (专用设备); PV cells 3825 in 38 related",
    },
    (2024, "定襄县法兰锻造产业集群"): {
        "industry_cic4": "3393",
        "match_rule": "锻造 -> 3393 (锻件及粉末冶金制品制造)",
    },
    (2024, "佛山市南海区安全应急产业集群"): {
        "match_type": "related",
        "related_cic2": "34;36",
        "match_rule": "安全应急 is a cross-industry theme: nearest 35 (专用设备); 34, 36 related",
    },
    (2024, "广州市番禺区纺织服装产业集群"): {
        "related_cic2": "17",
        "match_rule": "纺织服装 -> 18 (服装); textiles 17 related",
    },
    (2024, "无锡市新吴区物联网微机电系统传感器产业集群"): {
        "industry_cic4": "3983",
        "match_rule": "MEMS 传感器 -> 3983 (敏感元件及传感器制造)",
    },
    (2024, "宁晋县中低压及新能源电线电缆产业集群"): {
        "industry_cic4": "3831",
        "match_rule": "电线电缆 -> 3831 (电线、电缆制造)",
    },
    (2024, "安国市中药材精深加工产业集群"): {
        "industry_cic4": "2730;2740",
        "match_rule": "中药 -> 2730;2740 (中药饮片加工, 中成药生产)",
    },
    (2024, "枣强县玻璃纤维增强复合材料产业集群"): {
        "industry_cic4": "3062",
        "match_rule": "玻璃钢 -> 3062 (玻璃纤维增强塑料制品制造)",
    },
    (2024, "路北区智能特种机器人产业集群"): {
        "industry_cic2": "34",
        "industry_cic4": "3492",
        "match_rule": "特种机器人 -> 3492 (特殊作业机器人制造, in 34; first coded 35)",
    },
    (2024, "巩义市高精铝制造产业集群"): {
        "industry_cic4": "3252",
        "match_rule": "铝加工 -> 3252 (铝压延加工)",
    },
    (2024, "鹤壁市淇滨区商业卫星装备制造及应用产业集群"): {
        "industry_cic4": "3742",
        "related_cic2": "39",
        "match_rule": "卫星 -> 3742 (航天器及运载火箭制造); ground equipment 39 related",
    },
    (2024, "西安市长安区光子芯片产业集群"): {
        "industry_cic4": "3976",
        "match_rule": "光子芯片 -> 3976 (光电子器件制造)",
    },
    (2025, "北京市顺义区智能网联汽车配套产业集群"): {
        "industry_cic4": "3670",
        "match_rule": "汽车配套 -> 3670 (汽车零部件及配件制造)",
    },
    (2025, "崇州市板式家具产业集群"): {
        "industry_cic4": "2110",
        "match_rule": "板式家具 -> 2110 (木质家具制造)",
    },
    (2025, "成华区智能机器人产业集群"): {
        "related_cic2": "39",
        "match_rule": "机器人 -> 34; service robots 3964 in 39 related",
    },
    (2025, "广东省广州市海珠区智能制造系统集成服务产业集群"): {
        "related_cic2": "34;35",
        "match_rule": "系统集成服务 (services): no manufacturing code; machinery 34, 35 related",
    },
    (2025, "吉安县视听设备制造产业集群"): {
        "industry_cic4": "3951;3952;3953",
        "match_rule": "视听设备 -> 3951;3952;3953 (电视机, 音响设备, 影视录放设备制造)",
    },
    (2025, "芦溪县绝缘子产业集群"): {
        "related_cic2": "30",
        "match_rule": "绝缘子 -> 38 (输配电设备); ceramic insulators 30 related",
    },
    (2025, "金溪县香料加工产业集群"): {
        "industry_cic4": "2684",
        "match_rule": "香料 -> 2684 (香料、香精制造)",
    },
    (2025, "光山县羽绒制品产业集群"): {
        "industry_cic4": "1942",
        "match_rule": "羽绒制品 -> 1942 (羽毛(绒)制品加工)",
    },
    (2025, "洛阳市孟津区电子化工材料产业集群"): {
        "related_cic2": "39",
        "match_rule": "电子化学品 -> 26; 3985 电子专用材料 in 39 related",
    },
    (2025, "新乡市红旗区生物基纤维材料产业集群"): {
        "industry_cic4": "2831",
        "match_rule": "生物基纤维 -> 2831 (生物基化学纤维制造)",
    },
}

COLUMNS = [
    "cluster_id", "batch", "cluster_name", "province", "prefecture", "county", "county_code", "code_vintage",
    "industry", "industry_cic2", "industry_cic4", "related_cic2", "match_type", "match_rule", "notice", "notice_date",
    "public_date", "rereview", "source",
]  # fmt: skip


def _read(name: str) -> list[dict]:
    with open(HERE / name, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def county_code(
    codes: list[dict], province: str, prefecture: str, county: str
) -> tuple[str, str]:
    """(code, note): the unique county of that name in the province (the prefecture breaks ties)."""
    if not county:
        return "", "; no county-level code: the source names no county"
    prov = (
        "新疆维吾尔自治区" if province == "新疆生产建设兵团" else province
    )  # XPCC cities are coded under Xinjiang
    hits = [r for r in codes if r["province"] == prov and r["county"] == county]
    if len(hits) > 1:
        hits = [r for r in hits if r["prefecture"] == prefecture]
    if len(hits) == 1:
        h = hits[0]
        pref_ok = (
            h["prefecture"]
            in (prefecture, "市辖区", "自治区直辖县级行政区划", "省直辖县级行政区划")
            or province == h["prefecture"]
        )
        return (
            h["county_code"],
            ""
            if pref_ok or not prefecture
            else f"; code table puts {county} in {h['prefecture']}",
        )
    return (
        "",
        f"; no county-level code: '{county}' is {'not a county of ' + province if not hits else 'ambiguous'} in NBS 2023",
    )


def _partial_rows() -> list[dict]:
    rows = []
    for r in _read("certified_clusters_partial.csv"):
        row = {
            "batch": int(r["batch_year"]), "cluster_name": r["cluster_name"], "province": r["province"], "prefecture": r["city"],
            "county": r["county"], "industry": r["industry"], "industry_cic2": r["industry_cic2"], "industry_cic4": "", "related_cic2": "",
            "match_type": "core" if r["industry_cic2"] else "none",
            "match_rule": "project hand mapping of the leading industry (certified_clusters_partial.csv)" if r["industry_cic2"] else "outside manufacturing (services / design): no CIC 13-43 code",
            "rereview": "", "source": r["source"],
        }  # fmt: skip
        rows.append(row)
    return rows


def _source_rows(name: str, year_field: str = "batch") -> list[dict]:
    rows = []
    for r in _read(name):
        row = dict(r)
        row["batch"] = int(r[year_field])
        row["source"] = r["source"]
        rows.append(row)
    return rows


def _finish(rows: list[dict], codes: list[dict], *, national: bool) -> list[dict]:
    out = []
    for r in sorted(
        rows, key=lambda r: (r["batch"], r["province"], r["county"], r["cluster_name"])
    ):
        code, note = county_code(codes, r["province"], r["prefecture"], r["county"])
        if national:
            notice, date, public = NOTICES[r["batch"]]
            rere = r.get("rereview") or ""
            src = r["source"] + note
            if r["batch"] == 2022:
                if r["cluster_name"] in PASSED_2025:
                    rere = "passed 2025"
                    src += f"; re-review: {PASSED_2025[r['cluster_name']]}"
                elif not rere:
                    rere = "unknown (97 of 100 passed in 2025)"
            else:
                rere = rere or "not due"
        else:
            notice, date, public, rere, src = (
                r.get("notice", ""),
                "",
                r.get("public_date", ""),
                "",
                r["source"] + note,
            )
        cic2 = r["industry_cic2"]
        prefix = "" if national else "P"
        out.append(
            {"cluster_id": f"{prefix}{r['batch']}-{code or r['county'] or r['cluster_name']}-{cic2 or 'x'}", "batch": r["batch"], "cluster_name": r["cluster_name"], "province": r["province"],
                 "prefecture": r["prefecture"], "county": r["county"], "county_code": code, "code_vintage": "NBS 2023" if code else "", "industry": r["industry"],
                 "industry_cic2": cic2, "industry_cic4": r.get("industry_cic4", ""), "related_cic2": r.get("related_cic2", ""),
                 "match_type": r.get("match_type") or ("core" if cic2 else "none"), "match_rule": r["match_rule"], "notice": notice, "notice_date": date,
                 "public_date": public, "rereview": rere, "source": src}
        )  # fmt: skip
    ids = [r["cluster_id"] for r in out]
    for r in out:  # stable ids: batch-county-industry; a repeat (two service clusters of one county) gets the name
        if ids.count(r["cluster_id"]) > 1:
            r["cluster_id"] += "-" + r["cluster_name"]
    return out


def _recode(rows: list[dict]) -> list[dict]:
    seen = set()
    for row in rows:
        key = (row["batch"], row["cluster_name"])
        if key in RECODE:
            row.update(RECODE[key])
            seen.add(key)
    unused = set(RECODE) - seen
    if unused:
        raise KeyError(
            f"RECODE names clusters that are in no input file: {sorted(unused)}"
        )
    return rows


def build() -> list[dict]:
    """The national list: the partial file plus ``clusters_sources.csv``, recoded by ``RECODE``."""
    return _finish(
        _recode(_partial_rows() + _source_rows("clusters_sources.csv")),
        _read("clusters_county_codes_nbs2023.csv"),
        national=True,
    )


def build_provincial() -> list[dict]:
    """The provincial list (``clusters_provincial_sources.csv``); ``batch`` is the provincial list's year."""
    return _finish(
        _source_rows("clusters_provincial_sources.csv", "year"),
        _read("clusters_county_codes_nbs2023.csv"),
        national=False,
    )


def _write(rows: list[dict], name: str) -> None:
    path = HERE / name
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def main() -> None:
    rows = build()
    _write(rows, "clusters_national.csv")
    prov = build_provincial()
    _write(prov, "clusters_provincial.csv")
    by: dict[int, int] = {}
    for r in rows:
        by[r["batch"]] = by.get(r["batch"], 0) + 1
    print(
        "national:",
        {b: f"{n}/100" for b, n in sorted(by.items())},
        "provincial:",
        len(prov),
    )


if __name__ == "__main__":
    main()
