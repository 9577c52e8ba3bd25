"""Extract the He and Wang (2017) event study shipped with Roth's R package ``pretrends`` into JSON.

Source: github.com/jonathandroth/pretrends, file ``data/HeAndWangResults.rda`` (commit
122731d, "updated readme"): the list ``HeAndWangResults`` with ``beta`` (7 event-study
coefficients, event times -4..-2 and 0..3, reference -1), ``sigma`` (their 7 x 7 covariance) and
``tVec``. The package README of the same commit prints, for this example,

    slope_for_power(sigma, targetPower = 0.5, tVec, referencePeriod = -1)   # 0.05205871
    pretrends(beta, sigma, tVec, -1, deltatrue = slope50 * (tVec + 1))$df_power
    #       Power Bayes.Factor Likelihood.Ratio
    # 1 0.4999776      0.56901        0.1057627

and, in ``df_eventplot``, the standard errors 0.09437463 0.07705139 0.05512372 (pre) and
0.06264775 0.08981034 0.08877826 0.09893648 (post). Those printed numbers are stored next to the
extracted inputs; ``tests/test_robustness.py`` checks ``analysis.did.pretrends`` against them.

Run: ``python tests/reference/pretrends_hewang.py PATH/TO/HeAndWangResults.rda`` (writes
``tests/reference/pretrends_hewang.json``). The reader below understands just enough of R's XDR
serialization (version 2 or 3) for a named list of numeric vectors and matrices; nothing of the R
package's code is used.
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

PUBLISHED = {
    "source": "jonathandroth/pretrends README.md at commit 122731d (data/HeAndWangResults.rda)",
    "slope_for_power_50": 0.05205871,
    "power_at_slope50": 0.4999776,
    "bayes_factor_at_slope50": 0.56901,
    "likelihood_ratio_at_slope50": 0.1057627,
    "se": [0.09437463, 0.07705139, 0.05512372, 0.06264775, 0.08981034, 0.08877826, 0.09893648],
    "reference_period": -1,
}


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.b, self.i, self.refs = raw, 0, []

    def int(self) -> int:
        (v,) = struct.unpack(">i", self.b[self.i:self.i + 4])
        self.i += 4
        return v

    def doubles(self, n: int) -> list[float]:
        out = list(struct.unpack(f">{n}d", self.b[self.i:self.i + 8 * n]))
        self.i += 8 * n
        return out

    def bytes_(self, n: int) -> bytes:
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == 254:                       # NILVALUE
            return None
        if kind == 255:                       # REFSXP
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if kind == 1:                         # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 9:                         # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes_(n).decode("utf-8")
        if kind == 2:                         # LISTSXP (pairlist): attr, tag, car, cdr
            out = {}
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
                if kind == 254:
                    return out
                if kind != 2:
                    raise ValueError(f"unexpected pairlist tail of type {kind}")
        if kind in (13, 10):                  # INTSXP, LGLSXP
            n = self.int()
            value = list(struct.unpack(f">{n}i", self.bytes_(4 * n)))
        elif kind == 14:                      # REALSXP
            value = self.doubles(self.int())
        elif kind == 16:                      # STRSXP
            value = [self.item() for _ in range(self.int())]
        elif kind == 19:                      # VECSXP
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError(f"SEXP type {kind} not supported by this small reader")
        attrs = self.item() if has_attr else {}
        return {"value": value, "attributes": attrs or {}}


def read_rda(path: str | Path) -> dict:
    """Read an XDR (version 2 or 3) RData file into nested Python values."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not raw.startswith((b"RDX2\n", b"RDX3\n")) or raw[5:7] != b"X\n":
        raise ValueError("not an XDR RData file")
    r = _Reader(raw[7:])
    version = r.int()
    r.int(), r.int()
    if version == 3:
        r.bytes_(r.int())                     # native encoding
    return r.item()


def main(argv: list[str]) -> int:
    """Extract the He and Wang results of the given ``.rda`` file and print them as JSON."""
    top = read_rda(argv[0])
    obj = top["HeAndWangResults"]
    names = obj["attributes"]["names"]["value"]
    parts = dict(zip(names, obj["value"], strict=True))
    beta = parts["beta"]["value"]
    sigma = parts["sigma"]["value"]
    k = len(beta)
    out = {
        "beta": beta,
        "sigma": [sigma[i::k] for i in range(k)] if len(sigma) == k * k else sigma,  # R matrices are column-major
        "tVec": parts["tVec"]["value"],
        "published": PUBLISHED,
    }
    target = Path(__file__).with_suffix(".json")
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
