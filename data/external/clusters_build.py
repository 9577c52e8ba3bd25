"""Build ``clusters_national.csv`` from the sourced rows (run: ``python data/external/clusters_build.py``).

Inputs (all in this folder):
- ``certified_clusters_partial.csv``: the 75 rows assembled earlier (each with its source);
- ``ADDED`` below: rows found since, each with the source that was read;
- ``clusters_county_codes_nbs2023.csv``: county-level codes of NBS 统计用区划代码 2023
  (as of 2023-06-30), taken from github.com/modood/Administrative-divisions-of-China
  ``dist/areas.csv`` at commit dc3a1d7 (that repository compiles the NBS tables).

Every row keeps its source; codes come only from the code table (a name that matches no
county of its province, or several, is left without a code and says so). Nothing is guessed:
rows are added only from sources read, and the CIC mapping is the project's hand mapping
(``match_rule``), not an official classification.
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
# 2025: no notice number read; 四川日报 2025-11-05 and 江西日报 2025-11-06 report the list.

JX_2023 = "跑酷财经网 2023-11-02 (江西省 on the 2023 list; also names the 5 clusters of 2022) http://pk.bffs.cn/zixun/79066.html"
JX_2025 = "江西日报 via 人民网 2025-11-06 http://jx.people.com.cn/BIG5/n2/2025/1106/c186330-41402625.html"
SN_2024 = "陕西 news 2025 (names the 2 Shaanxi clusters of the 2024 list) http://www.1887cq.com/shehui/2025/299966.html"
SHORT = "; cluster name as abbreviated in the source ('地名+产业')"

# batch, cluster name as in the source, province, prefecture, county, leading industry, cic2, rule, source
ADDED = [
    (2022, "萍乡湘东工业陶瓷", "江西省", "萍乡市", "湘东区", "工业陶瓷", "30", "陶瓷 -> 30 (非金属矿物制品)", JX_2023 + SHORT),
    (2022, "崇仁中低压输变电设备", "江西省", "抚州市", "崇仁县", "中低压输变电设备", "38", "输变电设备 -> 38 (电气机械)", JX_2023 + SHORT),
    (2022, "樟树金属家具", "江西省", "宜春市", "樟树市", "金属家具", "21", "家具 -> 21", JX_2023 + SHORT),
    (2022, "余江眼镜", "江西省", "鹰潭市", "余江区", "眼镜", "35", "眼镜 -> 35 (358 医疗仪器设备及器械, incl. 眼镜制造)", JX_2023 + SHORT),
    (2022, "赣州章贡线路板", "江西省", "赣州市", "章贡区", "线路板", "39", "电子电路 -> 39", JX_2023 + SHORT),
    (2023, "南康现代家具", "江西省", "赣州市", "南康区", "现代家具", "21", "家具 -> 21", JX_2023 + SHORT),
    (2023, "贵溪铜基新材料", "江西省", "鹰潭市", "贵溪市", "铜基新材料", "32", "铜材 -> 32 (有色金属冶炼和压延加工)", JX_2023 + SHORT),
    (2023, "永修有机硅", "江西省", "九江市", "永修县", "有机硅", "26", "有机硅 -> 26 (化学原料和化学制品)", JX_2023 + SHORT),
    (2023, "浮梁陶瓷", "江西省", "景德镇市", "浮梁县", "陶瓷", "30", "陶瓷 -> 30", JX_2023 + SHORT),
    (2023, "南城校具(教育装备)", "江西省", "抚州市", "南城县", "校具(教育装备)", "21", "校具 (school furniture) -> 21; education equipment may also fall in 24", JX_2023 + SHORT),
    (2025, "吉安县视听设备制造产业集群", "江西省", "吉安市", "吉安县", "视听设备制造", "39", "视听设备 -> 39", JX_2025),
    (2025, "芦溪县绝缘子产业集群", "江西省", "萍乡市", "芦溪县", "绝缘子", "38", "绝缘子 -> 38 (electrical insulators; ceramic ones may be coded 30)", JX_2025),
    (2025, "金溪县香料加工产业集群", "江西省", "抚州市", "金溪县", "香料加工", "26", "香料 -> 26 (香料、香精制造)", JX_2025),
    (2024, "西安市长安区光子芯片产业集群", "陕西省", "西安市", "长安区", "光子芯片", "39", "芯片 -> 39", SN_2024),
    (2024, "西安市未央区稀有金属材料产业集群", "陕西省", "西安市", "未央区", "稀有金属材料", "32", "稀有金属 -> 32", SN_2024),
]

HA_2024 = "大河网-河南日报 2024-09-25 (河南新增3个国家级中小企业特色产业集群, all named) http://zmdtvw.cn/showinfo-183-334908-0.html"
HA_2025 = "河南日报 via 驻马店网 2025-11-06 (河南有6个产业集群上榜, all named) http://www.zmdnews.cn/2025/1106/833937.shtml"
ADDED += [
    (2024, "巩义市高精铝制造产业集群", "河南省", "郑州市", "巩义市", "高精铝制造", "32", "铝加工 -> 32", HA_2024),
    (2024, "信阳市平桥区绿色家居产业集群", "河南省", "信阳市", "平桥区", "绿色家居", "21", "家居 (furniture) -> 21", HA_2024),
    (2024, "鹤壁市淇滨区商业卫星装备制造及应用产业集群", "河南省", "鹤壁市", "淇滨区", "商业卫星装备制造及应用", "37", "卫星 -> 37 (航空、航天器)", HA_2024),
    (2025, "信阳市平桥区航空航天精密部件产业集群", "河南省", "信阳市", "平桥区", "航空航天精密部件", "37", "航空航天 -> 37", HA_2025),
    (2025, "新乡县振动筛分装备产业集群", "河南省", "新乡市", "新乡县", "振动筛分装备", "35", "筛分装备 -> 35 (专用设备; mining/screening machinery)", HA_2025),
    (2025, "洛阳市孟津区电子化工材料产业集群", "河南省", "洛阳市", "孟津区", "电子化工材料", "26", "电子化学品 -> 26 (or 3985 电子专用材料 in 39)", HA_2025),
    (2025, "新乡市红旗区生物基纤维材料产业集群", "河南省", "新乡市", "红旗区", "生物基纤维材料", "28", "纤维 -> 28 (化学纤维, 生物基材料)", HA_2025),
    (2025, "光山县羽绒制品产业集群", "河南省", "信阳市", "光山县", "羽绒制品", "19", "羽绒 -> 19 (羽毛(绒)加工及制品)", HA_2025),
    (2025, "西峡县特钢新材料产业集群", "河南省", "南阳市", "西峡县", "特钢新材料", "31", "钢 -> 31 (黑色金属冶炼和压延)", HA_2025),
]

GZ_2022 = "贵州 article (WeChat mirror) https://freewechat.com/a/MzA5Mzk0OTQwMA==/2651073013/1: 贵州已有4家...入选2022年度国家级中小企业特色产业集群名单, naming 仁怀酱香白酒、正安吉他制造、贵阳高新区先进装备制造 (the 4th not named)" + SHORT
ADDED += [
    (2022, "仁怀酱香白酒", "贵州省", "遵义市", "仁怀市", "酱香白酒", "15", "白酒 -> 15 (酒、饮料和精制茶)", GZ_2022),
    (2022, "正安吉他制造", "贵州省", "遵义市", "正安县", "吉他制造", "24", "乐器 -> 24 (文教、工美、体育和娱乐用品)", GZ_2022),
    (2022, "贵阳高新区先进装备制造", "贵州省", "贵阳市", "贵阳高新区", "先进装备制造", "35", "装备制造 -> 35 (专用设备; broad: 34-35)", GZ_2022),
]

# 2025 news: the 2022 batch re-review passed 97 of 100 and names these three among those passing
PASSED_2025 = {"北京市海淀区行业应用软件产业集群", "江苏省无锡市惠山区智能基础零部件制造产业集群", "浙江省湖州市吴兴区智能物流装备产业集群"}
REREVIEW_SRC = "http://www.360elib.com:2027/detail.aspx?NewsCode=NC342&NewsId=73999044&OrgId=001"

COLUMNS = [
    "cluster_id", "batch", "cluster_name", "province", "prefecture", "county", "county_code", "code_vintage",
    "industry", "industry_cic2", "industry_cic4", "match_type", "match_rule", "notice", "notice_date",
    "public_date", "rereview", "source",
]  # fmt: skip


def _codes() -> list[dict]:
    with open(HERE / "clusters_county_codes_nbs2023.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def county_code(codes: list[dict], province: str, prefecture: str, county: str) -> tuple[str, str]:
    """(code, note): the unique county of that name in the province (the prefecture breaks ties)."""
    prov = "新疆维吾尔自治区" if province == "新疆生产建设兵团" else province  # XPCC cities are coded under Xinjiang
    hits = [r for r in codes if r["province"] == prov and r["county"] == county]
    if len(hits) > 1:
        hits = [r for r in hits if r["prefecture"] == prefecture]
    if len(hits) == 1:
        h = hits[0]
        pref_ok = h["prefecture"] in (prefecture, "市辖区", "自治区直辖县级行政区划") or province == h["prefecture"]
        return h["county_code"], "" if pref_ok or not prefecture else f"; code table puts {county} in {h['prefecture']}"
    return "", f"; no county-level code: '{county}' is {'not a county of ' + province if not hits else 'ambiguous'} in NBS 2023"


def build() -> list[dict]:
    codes = _codes()
    rows = []
    with open(HERE / "certified_clusters_partial.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append(
                {"batch": int(r["batch_year"]), "cluster_name": r["cluster_name"], "province": r["province"], "prefecture": r["city"], "county": r["county"],
                     "industry": r["industry"], "industry_cic2": r["industry_cic2"], "match_rule": "project hand mapping of the leading industry (certified_clusters_partial.csv)" if r["industry_cic2"] else "outside manufacturing (services / design): no CIC 13-43 code",
                     "source": r["source"]}
            )  # fmt: skip
    for b, name, prov, pref, county, ind, cic2, rule, src in ADDED:
        rows.append({"batch": b, "cluster_name": name, "province": prov, "prefecture": pref, "county": county, "industry": ind, "industry_cic2": cic2, "match_rule": rule, "source": src + "; prefecture filled from the code table"})
    out = []
    for r in sorted(rows, key=lambda r: (r["batch"], r["province"], r["county"], r["cluster_name"])):
        code, note = county_code(codes, r["province"], r["prefecture"], r["county"])
        notice, date, public = NOTICES[r["batch"]]
        rere = "not due"
        if r["batch"] == 2022:
            rere = "passed 2025" if r["cluster_name"] in PASSED_2025 else "unknown (97 of 100 passed in 2025)"
        src = r["source"] + note + (f"; re-review: {REREVIEW_SRC}" if rere == "passed 2025" else "")
        out.append(
            {"cluster_id": f"{r['batch']}-{code or r['county']}-{r['industry_cic2'] or 'x'}", "batch": r["batch"], "cluster_name": r["cluster_name"], "province": r["province"], "prefecture": r["prefecture"],
                 "county": r["county"], "county_code": code, "code_vintage": "NBS 2023" if code else "", "industry": r["industry"], "industry_cic2": r["industry_cic2"],
                 "industry_cic4": "", "match_type": "core" if r["industry_cic2"] else "none", "match_rule": r["match_rule"], "notice": notice, "notice_date": date,
                 "public_date": public, "rereview": rere, "source": src}
        )  # fmt: skip
    ids = [r["cluster_id"] for r in out]
    for r in out:  # stable ids: batch-county-industry; a repeat (two service clusters of one county) gets the name
        if ids.count(r["cluster_id"]) > 1:
            r["cluster_id"] += "-" + r["cluster_name"]
    return out


def main() -> None:
    rows = build()
    path = HERE / "clusters_national.csv"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    by = {}
    for r in rows:
        by[r["batch"]] = by.get(r["batch"], 0) + 1
    print({b: f"{n}/100" for b, n in sorted(by.items())})


if __name__ == "__main__":
    main()
