#!/usr/bin/env python3
"""Writes the dmarcpipe sample corpus (samples/aggregate/..., samples/forensic/... and samples/tlsrpt/...).

Run from the repository root:  python3 samples/generate.py

Everything here is written by us: reporter names, addresses and IPs are fictional and stay in
documentation space (example.com/.net/.org, *.example, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32). The output is deterministic: gzip members carry mtime 0 and
no file name, zip entries a fixed timestamp, mails fixed boundaries, Message-IDs and dates.
Only the Python standard library is used.

Every report's natural key (org_name, report_id, policy domain, begin, end) is checked to be
unique across the corpus, except for the deliberate duplicate in aggregate/duplicates/; so is
every TLS report's (organization-name, report-id, date range).
"""

import base64
import calendar
import gzip
import hashlib
import io
import json
import os
import quopri
import random
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAY = 86400


def day(d, month=11):
    """Epoch seconds of 2026-<month>-<d> 00:00:00 UTC."""
    return calendar.timegm((2026, month, d, 0, 0, 0))


assert day(1) == 1793491200


def maildate(ts, offset_minutes=0, pad_day=True):
    """RFC 5322 date of epoch `ts`, shown in the zone `offset_minutes` east of UTC."""
    t = time.gmtime(ts + offset_minutes * 60)
    sign = "+" if offset_minutes >= 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    mday = f"{t.tm_mday:02d}" if pad_day else str(t.tm_mday)
    return (f"{WEEKDAYS[t.tm_wday]}, {mday} {MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hh:02d}{mm:02d}")


def mbox_date(ts):
    t = time.gmtime(ts)
    return (f"{WEEKDAYS[t.tm_wday]} {MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}")


def iso_day(ts):
    t = time.gmtime(ts)
    return f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d}"


WRITTEN = []


def write(rel, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    WRITTEN.append(rel)


def gz(data):
    """gzip with mtime 0 and no file name in the header (Python writes neither FNAME nor a time)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return gzip.compress(data, compresslevel=9, mtime=0)


ZIP_TIME = (2026, 11, 1, 0, 0, 0)


def zipped(entries):
    """entries: (name, bytes, method); a name ending in '/' is a directory entry."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, method in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                info.compress_type = zipfile.ZIP_STORED
                z.writestr(info, b"")
            else:
                if isinstance(data, str):
                    data = data.encode("utf-8")
                info.external_attr = 0o100644 << 16
                info.compress_type = method
                z.writestr(info, data, compress_type=method, compresslevel=9 if method == zipfile.ZIP_DEFLATED else None)
    return buf.getvalue()


def junk(seed, size):
    """`size` bytes that are no known format, the same for the same `seed`."""
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


def b64(data, width=76, pad=True):
    s = base64.b64encode(data).decode("ascii")
    if not pad:
        s = s.rstrip("=")
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


def crlf(text):
    assert "\r" not in text
    return text.replace("\n", "\r\n")


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------
# natural keys
# --------------------------------------------------------------------------------------------

KEYS = {}


def register(label, org, rid, domain, begin, end, dup_of=None):
    key = (org, rid, domain, begin, end)
    if dup_of is not None:
        assert KEYS.get(key) == dup_of, (label, key, KEYS.get(key))
        return
    if key in KEYS:
        raise SystemExit(f"natural key of {label} repeats the one of {KEYS[key]}: {key}")
    KEYS[key] = label


# --------------------------------------------------------------------------------------------
# XML writer: nodes are (tag, text) / (tag, [children]) / (tag, None) for <tag/> / Raw lines
# --------------------------------------------------------------------------------------------

class Raw(str):
    """A line of markup written as is (indented like an element)."""


def ser(node, ind, nl, lvl=0, sfx="", pfx=""):
    pad = ind * lvl
    if isinstance(node, Raw):
        return pad + node + sfx + nl
    tag, val = node
    name = tag.split(" ", 1)[0]
    if val is None:
        return f"{pad}<{pfx}{tag}/>{sfx}{nl}"
    if isinstance(val, list):
        out = f"{pad}<{pfx}{tag}>{sfx}{nl}"
        for child in val:
            out += ser(child, ind, nl, lvl + 1, sfx, pfx)
        return out + f"{pad}</{pfx}{name}>{sfx}{nl}"
    return f"{pad}<{pfx}{tag}>{val}</{pfx}{name}>{sfx}{nl}"


def dk(domain, selector, result, human=None):
    return {"domain": domain, "selector": selector, "result": result, "human_result": human}


def sp(domain, result, scope="mfrom", human=None):
    return {"domain": domain, "scope": scope, "result": result, "human_result": human}


def R(ip, count, disp, dkim, spf, header_from, envelope_from=None, envelope_to=None,
      dkims=(), spfs=(), reasons=(), tail=()):
    return {"ip": ip, "count": count, "disp": disp, "dkim": dkim, "spf": spf,
            "header_from": header_from, "envelope_from": envelope_from, "envelope_to": envelope_to,
            "dkims": list(dkims), "spfs": list(spfs), "reasons": list(reasons), "tail": list(tail)}


def record_node(r, ident, dkim_keys, spf_keys, ids_tag="identifiers"):
    pe = [("disposition", r["disp"]), ("dkim", r["dkim"]), ("spf", r["spf"])]
    for rtype, comment in r["reasons"]:
        pe.append(("reason", [("type", rtype)] + ([("comment", esc(comment))] if comment is not None else [])))
    row = [("source_ip", r["ip"]), ("count", str(r["count"])), ("policy_evaluated", pe)]
    ids = [(k, r[k]) for k in ident if r.get(k) is not None]
    auth = []
    for d in r["dkims"]:
        auth.append(("dkim", [(k, d[k]) for k in dkim_keys if d.get(k) is not None]))
    for s in r["spfs"]:
        auth.append(("spf", [(k, s[k]) for k in spf_keys if s.get(k) is not None]))
    return ("record", [("row", row), (ids_tag, ids), ("auth_results", auth)] + r["tail"])


DECL_GOOGLE = '<?xml version="1.0" encoding="UTF-8" ?>\n'
DECL_PLAIN = '<?xml version="1.0"?>\n'
DECL_UTF8 = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS2 = "urn:ietf:params:xml:ns:dmarc-2.0"
POLICY_DEFAULT = (("adkim", "r"), ("aspf", "r"), ("p", "reject"), ("sp", "reject"), ("pct", "100"), ("fo", "1"))


def feedback(label, org, email, rid, domain, begin, end, records, *, extra=None,
             policy=POLICY_DEFAULT, version="1.0", decl=DECL_GOOGLE, root="feedback",
             indent="  ", nl="\n", sfx="", pfx="", ident=("envelope_from", "header_from"),
             dkim_keys=("domain", "selector", "result"), spf_keys=("domain", "scope", "result"),
             meta_tail=(), ext=None, begin_text=None, end_text=None, ids_tag="identifiers",
             dup_of=None, key=True):
    """Serialises one aggregate report and registers its natural key."""
    meta = []
    if org is not None:
        meta.append(("org_name", esc(org)))
    if email is not None:
        meta.append(("email", email))
    if isinstance(extra, (Raw, tuple)):
        meta.append(extra)
    elif extra is not None:
        meta.append(("extra_contact_info", esc(extra)))
    if rid is not None:
        meta.append(("report_id", rid))
    meta.append(("date_range", [("begin", begin_text or str(begin)), ("end", end_text or str(end))]))
    meta += list(meta_tail)
    children = []
    if version is not None:
        children.append(("version", version))
    children.append(("report_metadata", meta))
    children.append(("policy_published", [("domain", domain)] + list(policy)))
    if ext is not None:
        children.append(ext)
    children += [record_node(r, ident, dkim_keys, spf_keys, ids_tag) for r in records]
    text = decl + ser((root, children), indent, nl, 0, sfx, pfx)
    if key:
        register(label, org if org is not None else email.rsplit("@", 1)[1], rid, domain, begin, end, dup_of)
    return text


# --------------------------------------------------------------------------------------------
# record mixes
# --------------------------------------------------------------------------------------------

def typical(domain, label, p="reject", kinds="own v6 esp fwd list spoof broken"):
    """A realistic mix of records for one policy domain; counts and addresses vary by label."""
    rnd = random.Random("records:" + label)
    sel = rnd.choice(["s2026a", "selector1", "mx2026", "k1", "default", "dkim1"])
    out = []
    for kind in kinds.split():
        if kind == "own":
            out.append(R(f"192.0.2.{rnd.randint(10, 39)}", rnd.randint(120, 480), "none", "pass", "pass",
                         domain, domain, dkims=[dk(domain, sel, "pass")], spfs=[sp(domain, "pass")]))
        elif kind == "v6":
            ip = f"2001:db8:{rnd.randint(16, 255):x}::{rnd.randint(2, 250):x}"
            out.append(R(ip, rnd.randint(20, 160), "none", "pass", "pass",
                         domain, domain, dkims=[dk(domain, sel, "pass")], spfs=[sp(domain, "pass")]))
        elif kind == "esp":
            hf, ef = "news." + domain, "bounce.mailer.example"
            out.append(R(f"198.51.100.{rnd.randint(20, 59)}", rnd.randint(10, 90), "none", "pass", "fail",
                         hf, ef, dkims=[dk(hf, "mlr2026", "pass"), dk("mailer.example", "k2", "pass")],
                         spfs=[sp(ef, "pass")]))
        elif kind == "fwd":
            out.append(R(f"203.0.113.{rnd.randint(40, 79)}", rnd.randint(1, 25), "none", "pass", "fail",
                         domain, domain, dkims=[dk(domain, sel, "pass")], spfs=[sp(domain, "softfail")]))
        elif kind == "list":
            reasons = [("mailing_list", "lists.example.org")] if p != "none" else []
            out.append(R(f"198.51.100.{rnd.randint(70, 99)}", rnd.randint(1, 12), "none", "fail", "fail",
                         domain, "lists.example.org",
                         dkims=[dk(domain, sel, "fail"), dk("lists.example.org", "list1", "pass")],
                         spfs=[sp("lists.example.org", "pass")], reasons=reasons))
        elif kind == "spoof":
            out.append(R(f"203.0.113.{rnd.randint(180, 249)}", rnd.randint(1, 60), p, "fail", "fail",
                         domain, domain, spfs=[sp(domain, "fail")]))
        elif kind == "spoof6":
            ip = f"2001:db8:bad:{rnd.randint(1, 255):x}::{rnd.randint(2, 250):x}"
            out.append(R(ip, rnd.randint(1, 30), p, "fail", "fail", domain, "bulk-sender.example",
                         dkims=[dk("bulk-sender.example", "s1", "pass")], spfs=[sp("bulk-sender.example", "pass")]))
        elif kind == "broken":
            disp = "quarantine" if p == "reject" else p
            reasons = [("local_policy", "reject downgraded to quarantine")] if p == "reject" else []
            out.append(R(f"203.0.113.{rnd.randint(80, 119)}", rnd.randint(1, 9), disp, "fail", "fail",
                         domain, "forwarder.example", dkims=[dk(domain, sel, "fail")],
                         spfs=[sp("forwarder.example", "pass")], reasons=reasons))
        else:
            raise ValueError(kind)
    return out


# --------------------------------------------------------------------------------------------
# reporter shapes
# --------------------------------------------------------------------------------------------

def google_xml(label, rid, domain, begin, p="reject", kinds="own v6 esp fwd spoof"):
    return feedback(label, "google.example", "noreply-dmarc-support@google.example", rid, domain,
                    begin, begin + DAY - 1, typical(domain, label, p, kinds),
                    extra="https://support.google.example/a/answer/2466580",
                    policy=(("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", p), ("pct", "100"), ("np", p)),
                    decl=DECL_GOOGLE, ident=("header_from",),
                    dkim_keys=("domain", "result", "selector"), spf_keys=("domain", "result"))


def outlook_xml(label, rid, domain, begin, p="quarantine", kinds="own v6 esp fwd spoof broken",
                extra=Raw("<extra_contact_info />")):
    recs = typical(domain, label, p, kinds)
    for i, r in enumerate(recs):
        r["envelope_to"] = "hotmail.example" if i % 3 == 2 else "outlook.example"
    return feedback(label, "Outlook.example", "dmarcreport@microsoft.example", rid, domain,
                    begin, begin + DAY, recs, extra=extra,
                    policy=(("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", p), ("pct", "100"), ("fo", "0")),
                    decl=DECL_PLAIN,
                    root='feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
                    ident=("envelope_to", "envelope_from", "header_from"))


def yahoo_xml(label, rid, domain, begin, p="reject", kinds="own esp fwd spoof", dup_of=None):
    recs = typical(domain, dup_of or label, p, kinds)
    recs[-1]["dkims"] = []
    return feedback(label, "yahoo.example", "dmarchelp@yahooinc.example", rid, domain,
                    begin, begin + DAY - 1, recs, version=None,
                    policy=(("adkim", "r"), ("aspf", "r"), ("p", p), ("pct", "100")),
                    decl=DECL_PLAIN, sfx="\t", ident=("header_from",),
                    dkim_keys=("domain", "selector", "result"), spf_keys=("domain", "result"), dup_of=dup_of)


def mailru_xml(label, rid_prefix, domain, begin, p="quarantine", kinds="own esp spoof spoof6 list"):
    return feedback(label, "mail.ru.example", "dmarc_support@corp.mail.ru.example", f"{rid_prefix}{begin}",
                    domain, begin, begin + DAY, typical(domain, label, p, kinds),
                    extra="http://help.mail.ru.example/mail-help", version=None,
                    policy=(("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", "none"), ("pct", "100")),
                    decl="<?xml version='1.0' encoding='utf-8'?>", indent="", nl="", ident=("header_from",))


def gmx_xml(label, rid, domain, begin, p="reject", kinds="own v6 esp fwd spoof", records=None):
    recs = records if records is not None else typical(domain, label, p, kinds)
    return feedback(label, "gmx.example", "noreply-dmarc@sicher.gmx.example", rid, domain,
                    begin, begin + DAY - 1, recs,
                    extra="https://postmaster.gmx.example/en/case?c=r2002",
                    meta_tail=[("generator", "GMX DMARC Reporter 3.1.4")],
                    policy=(("discovery_method", "psl"), ("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", p),
                            ("np", "reject"), ("testing", "n")),
                    decl=DECL_UTF8, root=f'feedback xmlns="{NS2}"', indent="   ",
                    dkim_keys=("domain", "selector", "result", "human_result"),
                    spf_keys=("domain", "scope", "result", "human_result"))


def isp_xml(label, org, email, rid, domain, begin, p="reject", kinds="own esp fwd list spoof", **kw):
    """The common xs4all/OpenDMARC-like shape: version 1.0, envelope_from, selectors, scopes."""
    return feedback(label, org, email, rid, domain, begin, begin + DAY - 1, typical(domain, label, p, kinds),
                    extra=kw.pop("extra", f"mailto:{email}"),
                    policy=kw.pop("policy", (("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", p),
                                             ("pct", "100"), ("fo", "1"))), **kw)


def html_summary(domain, begin, end, records, reporter="Microsoft Corporation"):
    rows = "\n".join(
        f'<tr><td>{r["ip"]}</td><td>{r["count"]}</td><td>{r["header_from"]}</td>'
        f'<td>{r["spf"]}</td><td>{r["dkim"]}</td><td>{r["disp"]}</td></tr>' for r in records)
    return (f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>DMARC aggregate report for {domain}</title></head>
<body style="font-family:Segoe UI, sans-serif; font-size:14px;">
<p><b>[Preview]</b> This is a DMARC aggregate report from {reporter} (fictional sample) for
{domain}, for email received between {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(begin))} UTC and
{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(end))} UTC.</p>
<table border="1" cellpadding="4" style="border-collapse:collapse;">
<tr><th>Source IP</th><th>Messages</th><th>Header From</th><th>SPF</th><th>DKIM</th><th>Disposition</th></tr>
{rows}
</table>
<p style="color:#666666; font-size:12px;">Please do not respond to this e-mail. This mailbox is not
monitored. The machine-readable report, if any, is attached.</p>
</body>
</html>
""")


# --------------------------------------------------------------------------------------------
# mails
# --------------------------------------------------------------------------------------------

def google_mail(xml, rid, domain, begin, to, arrived):
    name = f"google.example!{domain}!{begin}!{begin + DAY - 1}"
    z = zipped([(name + ".xml", xml, zipfile.ZIP_DEFLATED)])
    return f"""Return-Path: <noreply-dmarc-support@google.example>
Received: from mail-sor-f73.google.example (mail-sor-f73.google.example [2001:db8:4860:4864::49])
\tby mx.{domain} (Postfix) with ESMTPS id 4ZqL8m2Vb1z9s
\tfor <{to}>; {maildate(arrived)}
MIME-Version: 1.0
Date: {maildate(arrived - 41, -480)}
Message-ID: <{rid}@google.example>
Subject: Report domain: {domain} Submitter: google.example Report-ID: {rid}
From: noreply-dmarc-support@google.example
To: {to}
Content-Type: application/zip; 
\tname="{name}.zip"
Content-Disposition: attachment; 
\tfilename="{name}.zip"
Content-Transfer-Encoding: base64

{b64(z)}
"""


def yahoo_mail(gz_bytes, rid, domain, begin, to, arrived):
    name = f"yahoo.example!{domain}!{begin}!{begin + DAY - 1}.xml.gz"
    bnd = f"_----------=_{arrived}408154728"
    text = "This is an aggregate report from Yahoo Example."
    return f"""Return-Path: <noreply@dmarc.yahoo.example>
Received: from sonic301-7.consmr.mail.gq1.yahoo.example (sonic301-7.consmr.mail.gq1.yahoo.example [198.51.100.131])
\tby mx.{domain} (Postfix) with ESMTP id 7DD60DEB22
\tfor <{to}>; {maildate(arrived, pad_day=False)}
MIME-Version: 1.0
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed; boundary="{bnd}"
X-Mailer: MIME::Lite 3.033 (F2.85; T2.17; A2.21; B3.16; Q3.16)
Date: {maildate(arrived - 2, -480, pad_day=False)}
From: noreply@dmarc.yahoo.example
To: {to}
Subject: Report Domain: {domain} Submitter: yahoo.example Report-ID: <{rid}>
Message-Id: <{arrived}.{rid.split('.')[-1]}@dmarc.yahoo.example>

This is a multi-part message in MIME format.

--{bnd}
Content-Disposition: inline
Content-Length: {len(text)}
Content-Transfer-Encoding: binary
Content-Type: text/plain

{text}
--{bnd}
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64
Content-Type: application/gzip; name="{name}"

{b64(gz_bytes)}

--{bnd}--

"""


def isp_mail(gz_bytes, *, org, sender, rid, domain, begin, to, arrived, text, ctype="application/gzip",
             filename=None, boundary=None, width=76, pad=True, extra_headers=""):
    """xs4all/OpenDMARC-like mail: text/plain part plus one base64 attachment."""
    filename = filename or f"{org}!{domain}!{begin}!{begin + DAY - 1}.xml.gz"
    boundary = boundary or f"{org}-{arrived}-{abs(hash_int(rid)) % 10000000}"
    return f"""Return-Path: <{sender}>
Received: from smtp-out.{org} (smtp-out.{org} [192.0.2.253])
\tby mx.{domain} (Postfix) with ESMTPS id {hash_int(rid) % 0xFFFFFFFFF:09X}
\tfor <{to}>; {maildate(arrived, 60)}
From: {sender}
To: {to}
Subject: Report Domain: {domain}
    Submitter: {org}
    Report-ID: <{rid}>
Message-ID: <{rid}>
MIME-Version: 1.0
Content-Type: multipart/mixed;
    boundary="{boundary}"
{extra_headers}Date: {maildate(arrived, 60)}

--{boundary}
Content-Disposition: inline
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

{text}

--{boundary}
Content-Type: {ctype}; name="{filename}"
Content-Disposition: attachment; filename="{filename}"
Content-Transfer-Encoding: base64

{b64(gz_bytes, width, pad)}

--{boundary}--
"""


def hash_int(text):
    """A stable small integer from a string (Python's hash() is salted per process)."""
    value = 0
    for ch in text.encode("utf-8"):
        value = (value * 131 + ch) % 0xFFFFFFFFFFFF
    return value


# --------------------------------------------------------------------------------------------
# aggregate/ : reporter shapes
# --------------------------------------------------------------------------------------------

def reporter_shapes():
    # --- Google: single-part mail whose body is the zip (CRLF, as on the wire) ---------------
    rid = "4902317586213098471"
    xml = google_xml("aggregate/google-zip-in-mail.eml", rid, "example.com", day(1),
                     kinds="own v6 esp fwd spoof spoof6")
    write("aggregate/google-zip-in-mail.eml",
          crlf(google_mail(xml, rid, "example.com", day(1), "dmarc-reports@example.com", day(2) + 22367)))

    # --- Outlook.com: plain XML with xsd/xsi declarations -------------------------------------
    write("aggregate/outlook-xsi.xml",
          outlook_xml("aggregate/outlook-xsi.xml", "c2f7a5d1e39b4f0a8d6b2e91f4a7c305", "example.net", day(1)))

    # --- Microsoft "[Preview]" mail: HTML summary + gzip attachment ---------------------------
    label = "aggregate/outlook-preview-mail.eml"
    rid = "5e8d0b7c41a24f39b6c1d2e3f4a5b697"
    begin = day(2)
    recs_label = label
    xml = outlook_xml(label, rid, "example.org", begin, p="reject", kinds="own v6 esp list spoof broken")
    recs = typical("example.org", recs_label, "reject", "own v6 esp list spoof broken")
    html = html_summary("example.org", begin, begin + DAY, recs)
    name = f"enterprise.protection.outlook.example!example.org!{begin}!{begin + DAY}.xml.gz"
    data = gz(xml)
    arrived = day(3) + 16277
    bnd = f"_002_{rid}_"
    write("aggregate/outlook-preview-mail.eml", f"""Received: from DM6PR11MB4123.namprd11.prod.outlook.example (2001:db8:6a0::1c) by
 mx.example.org with ESMTPS id 4ZqKXb1h2Cz3; {maildate(arrived)}
From: DMARC Aggregate Report <dmarcreport@microsoft.example>
To: <dmarc-reports@example.org>
Subject: [Preview] Report Domain: example.org Submitter: enterprise.protection.outlook.example
 Report-ID: {rid}
Thread-Topic: [Preview] Report Domain: example.org Submitter:
 enterprise.protection.outlook.example Report-ID: {rid}
Date: {maildate(arrived - 3, pad_day=False)}
Message-ID: <{rid}@dmarc.microsoft.example>
Content-Language: en-US
X-MS-Has-Attach: yes
Content-Type: multipart/mixed;
\tboundary="{bnd}"
MIME-Version: 1.0

--{bnd}
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: base64

{b64(html.encode("utf-8"))}

--{bnd}
Content-Type: application/gzip;
\tname="{name}"
Content-Description: {name}
Content-Disposition: attachment;
\tfilename="{name}"; size={len(data)};
\tcreation-date="{maildate(arrived - 3).replace("+0000", "GMT")}";
\tmodification-date="{maildate(arrived - 3).replace("+0000", "GMT")}"
Content-Transfer-Encoding: base64

{b64(data)}

--{bnd}--
""")

    # --- Yahoo: gzip of plain XML (no <version>, trailing tabs) -------------------------------
    xml = yahoo_xml("aggregate/yahoo.xml.gz", "1793563117.482913", "example.com", day(1))
    write("aggregate/yahoo.xml.gz", gz(xml))
    # the same report again, delivered as a mail: aggregate/duplicates/
    dup = yahoo_xml("aggregate/duplicates/yahoo-again.eml", "1793563117.482913", "example.com", day(1),
                    dup_of="aggregate/yahoo.xml.gz")
    assert dup == xml
    write("aggregate/duplicates/yahoo-again.eml",
          yahoo_mail(gz(xml), "1793563117.482913", "example.com", day(1), "dmarc-reports@example.com",
                     day(2) + 7280))

    # --- Mail.Ru-like: one line, single-quoted declaration, no newline after it ---------------
    write("aggregate/mailru.xml",
          mailru_xml("aggregate/mailru.xml", "4719305528163047391", "example.net", day(2)))

    # --- GMX-like RFC 9990 (default dmarc-2.0 namespace) --------------------------------------
    d = "example.org"
    recs = typical(d, "aggregate/gmx-dmarc2.xml", "reject", "own v6 esp fwd spoof")
    recs[0]["disp"] = "pass"
    for r in recs:
        for s in r["spfs"]:
            s["human_result"] = {"pass": "sender is authorized", "softfail": "sender is not authorized (~all)",
                                 "fail": "sender is not authorized (-all)"}.get(s["result"])
    recs[2]["dkims"][0]["human_result"] = "signature verified"
    write("aggregate/gmx-dmarc2.xml",
          gmx_xml("aggregate/gmx-dmarc2.xml", "9b1f3e6a0c4d4e7f8a2b5c6d7e8f9012", d, day(1), records=recs))

    # --- Amazon SES-like: application/octet-stream, RFC 2231 split name -----------------------
    label = "aggregate/amazonses-octet-stream.eml"
    rid = "6b1c0e52-8f3d-4c2a-9e71-3d5f0a9b2c48"
    begin = day(31, 10)
    xml = feedback(label, "amazonses.example", "postmaster@amazonses.example", rid, "example.org",
                   begin, begin + DAY, typical("example.org", label, "none", "own esp fwd spoof"),
                   policy=(("adkim", "r"), ("aspf", "r"), ("p", "none"), ("sp", "none"), ("pct", "100"),
                           ("fo", "0")),
                   decl=DECL_PLAIN, indent="\t", spf_keys=("domain", "result"))
    base = f"amazonses.example!example.org!{begin}!{begin + DAY}."
    arrived = day(1) + 36365
    bnd = "----=_Part_118204_1793527165.1793527165432"
    write(label, f"""Received: from a8-31.smtp-out.amazonses.example (a8-31.smtp-out.amazonses.example [198.51.100.31])
\tby mx.example.org (Postfix) with ESMTPS id 5B2C17E19D
\tfor <dmarc-reports@example.org>; {maildate(arrived)}
From: postmaster@amazonses.example
To: dmarc-reports@example.org
Message-ID: <0100019a3b7c5e21-{rid}-000000@email.amazonses.example>
Subject: Dmarc Aggregate Report Domain: {{example.org}}  Submitter: {{Amazon SES}}
  Date: {{{iso_day(begin)}}}  Report-ID: {{{rid}}}
MIME-Version: 1.0
Content-Type: multipart/mixed; 
\tboundary="{bnd}"
Date: {maildate(arrived - 1, pad_day=False)}
Feedback-ID: 1.us-east-1.QmFzZTY0LWZpY3Rpb25hbA==:AmazonSES
X-SES-Outgoing: 2026.11.01-198.51.100.31

--{bnd}
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

This MIME email was sent through Amazon SES.
--{bnd}
Content-Type: application/octet-stream; 
\tname*0="{base}";
\tname*1="xml.gz"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; 
\tfilename*0="{base}";
\tfilename*1="xml.gz"

{b64(gz(xml))}
--{bnd}--
""")

    # --- Fastmail-like: text/plain 8bit UTF-8 + application/gzip ------------------------------
    label = "aggregate/fastmail.eml"
    rid = "1793498761"
    begin = day(31, 10)
    xml = feedback(label, "fastmail.example", "reports@fastmaildmarc.example", rid, "example.com",
                   begin, begin + DAY - 1, typical("example.com", label, "quarantine", "own v6 esp list spoof"),
                   extra="https://fastmail.example/",
                   policy=(("p", "quarantine"), ("sp", "quarantine"), ("pct", "100"), ("fo", "0")),
                   decl=DECL_PLAIN, indent="\t", ident=("envelope_to", "envelope_from", "header_from"))
    name = f"fastmail.example!example.com!{begin}!{begin + DAY - 1}!{rid}.xml.gz"
    arrived = day(1) + 11561
    bnd = f"_----------=_{arrived}1842107"
    write(label, f"""Return-Path: <noreply-dmarc@fastmail.example>
Received: from mx.fastmail.example (out3-smtp.fastmail.example [2001:db8:f00::33])
\tby mx.example.com (Postfix) with ESMTPS id 4ZqJ0s1n6Kz1
\tfor <dmarc-reports@example.com>; {maildate(arrived)}
From: "Fastmail DMARC Reports" <noreply-dmarc@fastmail.example>
To: "DMARC reports for example.com" <dmarc-reports@example.com>
Subject: Report Domain: example.com Submitter: fastmail.example Report-ID: <{rid}>
Date: {maildate(arrived, 660)}
Message-Id: <{rid}.{arrived}@fastmail.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="{bnd}"

This is a multi-part message in MIME format.

--{bnd}
Content-Type: text/plain; charset="utf-8"
Content-Disposition: inline
Content-Transfer-Encoding: 8bit

This is a DMARC aggregate report for example.com, period {iso_day(begin)} 00:00–23:59 UTC.
Ceci est un rapport agrégé DMARC — Dies ist ein DMARC-Sammelbericht für Ihre Domäne.
Questions? Write to “reports@fastmaildmarc.example” ✉

--{bnd}
Content-Type: application/gzip; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{b64(gz(xml))}

--{bnd}--
""")

    # --- forwarded by a human as message/rfc822 ----------------------------------------------
    label = "aggregate/forwarded.eml"
    org = "mail.reporter.example"
    begin = day(30, 10)
    rid = f"{org}.{begin + 93283}.4410327@dmarc-reports.{org}"
    xml = isp_xml(label, org, f"noreply@dmarc-reports.{org}", rid, "example.net", begin, p="quarantine")
    inner = isp_mail(gz(xml), org=org, sender=f"noreply@dmarc-reports.{org}", rid=rid, domain="example.net",
                     begin=begin, to="alice@example.net", arrived=begin + 93283,
                     text="This is a DMARC (rfc7489) aggregate report for your domain.\n"
                          "For more information, see https://dmarc.example/")
    arrived = begin + 2 * DAY + 30011
    bnd = "------------fwd0A1B2C3D4E5F60718"
    write(label, f"""Return-Path: <alice@example.net>
Received: from [192.0.2.77] (laptop.example.net [192.0.2.77])
\tby mx.example.net (Postfix) with ESMTPSA id 3B1F0DEB40
\tfor <dmarc-reports@example.net>; {maildate(arrived, 60)}
Message-ID: <8c1e5a3f-2b7d-4e91-a0c6-5d2f7b9e1a34@example.net>
Date: {maildate(arrived - 12, 60)}
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
From: Alice Admin <alice@example.net>
To: dmarc-reports@example.net
Subject: Fwd: Report Domain: example.net Submitter: {org} Report-ID:
 <{rid}>
Content-Type: multipart/mixed; boundary="{bnd}"

This is a multi-part message in MIME format.
--{bnd}
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Hi,

this report landed in my own inbox instead of the reports mailbox.
Forwarding it as an attachment so that the pipeline picks it up.

Alice

--{bnd}
Content-Type: message/rfc822; name="Report Domain example.net Submitter {org}.eml"
Content-Disposition: attachment;
 filename="Report Domain example.net Submitter {org}.eml"

{inner}
--{bnd}--
""")


# --------------------------------------------------------------------------------------------
# aggregate/several.mbox, aggregate/maildir/, aggregate/multi-report.zip
# --------------------------------------------------------------------------------------------

def human_lunch_mail():
    return f"""Return-Path: <bob@example.org>
Received: from [198.51.100.12] (desk-17.example.org [198.51.100.12])
\tby mx.example.org (Postfix) with ESMTPSA id 9C2D1DEB55
\tfor <dmarc-reports@example.org>; {maildate(day(3) + 40212, 60)}
From: Bob Builder <bob@example.org>
To: Team <dmarc-reports@example.org>
Subject: Lunch on Friday?
Date: {maildate(day(3) + 40200, 60)}
Message-ID: <lunch-20261103.1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hi all,

shall we try the new noodle bar on Friday at 12:30?
>From what I heard, they have a lunch menu for 9.50 €.

Reply by Thursday so I can book a table for everybody.

Bob
"""


def mbox_message(sender, ts, message):
    for line in message.split("\n"):
        assert not line.startswith("From "), line
    assert message.endswith("\n")
    return f"From {sender} {mbox_date(ts)}\n{message}\n"


def mailboxes():
    # --- several.mbox: three reports and one human mail -------------------------------------
    rid_g = "11840372619305527164"
    xml_g = google_xml("aggregate/several.mbox#1", rid_g, "example.org", day(2), p="quarantine",
                       kinds="own esp fwd spoof")
    m1 = google_mail(xml_g, rid_g, "example.org", day(2), "dmarc-reports@example.org", day(3) + 1862)

    m2 = human_lunch_mail()

    rid_y = "1793649522.118204"
    xml_y = yahoo_xml("aggregate/several.mbox#2", rid_y, "example.net", day(2), p="quarantine",
                      kinds="own v6 esp spoof")
    m3 = yahoo_mail(gz(xml_y), rid_y, "example.net", day(2), "dmarc-reports@example.net", day(3) + 8322)

    org = "dmarc.isp.example"
    rid_i = f"{org}.1793736011.5513@{org}"
    xml_i = isp_xml("aggregate/several.mbox#4", org, f"noreply@{org}", rid_i, "example.com", day(3))
    m4 = isp_mail(gz(xml_i), org=org, sender=f"noreply@{org}", rid=rid_i, domain="example.com", begin=day(3),
                  to="dmarc-reports@example.com", arrived=day(4) + 2411,
                  text="This is a DMARC aggregate report for your domain.")
    write("aggregate/several.mbox",
          mbox_message("noreply-dmarc-support@google.example", day(3) + 1862, m1)
          + mbox_message("noreply@dmarc.yahoo.example", day(3) + 8322, m3)
          + mbox_message("bob@example.org", day(3) + 40212, m2)
          + mbox_message(f"noreply@{org}", day(4) + 2411, m4))

    # --- maildir/: two mails in new/, one in cur/ (seen), an empty tmp/ ------------------------
    begin = day(31, 10)
    rid = "0a7c3e9d5b2f4c1e8d6a9b3f7e2c5d14"
    xml = gmx_xml("aggregate/maildir/new/1793500000.M1P1.host.example", rid, "example.com", begin)
    name = f"gmx.example!example.com!{begin}!{begin + DAY - 1}.xml.gz"
    arrived = 1793500000
    write("aggregate/maildir/new/1793500000.M1P1.host.example", f"""Return-Path: <noreply-dmarc@sicher.gmx.example>
Delivered-To: dmarc-reports@example.com
Received: from mout.gmx.example (mout.gmx.example [203.0.113.15])
\tby mx.example.com (Postfix) with ESMTPS id 4ZqH7k0bCxz2
\tfor <dmarc-reports@example.com>; {maildate(arrived)}
From: noreply-dmarc@sicher.gmx.example
To: dmarc-reports@example.com
Subject: Report Domain: example.com Submitter: gmx.example Report-ID: <{rid}>
Date: {maildate(arrived - 5, 60)}
Message-ID: <{rid}@gmx.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="gmx-report-{rid[:12]}"

--gmx-report-{rid[:12]}
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

This is a DMARC aggregate report (RFC 9990) from gmx.example.

--gmx-report-{rid[:12]}
Content-Type: application/gzip; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{b64(gz(xml))}
--gmx-report-{rid[:12]}--
""")

    xml = mailru_xml("aggregate/maildir/new/1793500001.M2P1.host.example", "2963051187402265189",
                     "example.org", begin, p="reject")
    rid = f"2963051187402265189{begin}"
    name = f"mail.ru.example!example.org!{begin}!{begin + DAY}.xml.gz"
    arrived = 1793500001
    bnd = "===============8061452213386742210=="
    write("aggregate/maildir/new/1793500001.M2P1.host.example", f"""Return-Path: <dmarc_support@corp.mail.ru.example>
Delivered-To: dmarc-reports@example.org
Received: from relay7.m.mailru.example (relay7.m.mailru.example [203.0.113.51])
\tby mx.example.org (Postfix) with ESMTPS id 776AFDEB1A
\tfor <dmarc-reports@example.org>; {maildate(arrived)}
Content-Type: multipart/mixed; boundary="{bnd}"
MIME-Version: 1.0
Subject: Report Domain: example.org; Submitter: mail.ru.example;
 Report-ID: {rid}
From: dmarc_support@corp.mail.ru.example
To: dmarc-reports@example.org
Message-ID: <dmarc-{arrived}@corp.mail.ru.example>
Date: {maildate(arrived, 180)}
Auto-Submitted: auto-generated

--{bnd}
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

{b64("This is an aggregate report from mail.ru.example.".encode())}

--{bnd}
Content-Type: application/gzip
MIME-Version: 1.0
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
 filename="{name}"

{b64(gz(xml))}

--{bnd}--
""")

    begin = day(30, 10)
    rid = "7d3a9c1e5b2f4e6a8c0d2b4f6e8a0c13"
    label = "aggregate/maildir/cur/1793413600.M3P1.host.example:2,S"
    xml = outlook_xml(label, rid, "example.com", begin, p="none", kinds="own v6 esp spoof",
                      extra=None)
    name = f"protection.outlook.example!example.com!{begin}!{begin + DAY}.xml.gz"
    arrived = 1793413600
    bnd = f"_000_{rid}_"
    html = ('<div style ="font-family:Segoe UI; font-size:14px;">This is a DMARC aggregate report from '
            'Microsoft Corporation (fictional sample). For Emails received between '
            f'{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(begin))} UTC to '
            f'{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(begin + DAY))} UTC.</ div><br /><br />')
    write(label, f"""Return-Path: <dmarcreport@microsoft.example>
Delivered-To: dmarc-reports@example.com
Received: from NAM10-BN7-obe.outbound.protection.outlook.example (2001:db8:6a0::2d)
\tby mx.example.com (Postfix) with ESMTPS id 46C24DEB0F
\tfor <dmarc-reports@example.com>; {maildate(arrived)}
From: DMARC Aggregate Report <dmarcreport@microsoft.example>
To: <dmarc-reports@example.com>
Subject: Report Domain: example.com Submitter: protection.outlook.example Report-ID: {rid}
Date: {maildate(arrived - 9)}
Message-ID: <{rid}@dmarc.microsoft.example>
Content-Type: multipart/mixed; boundary="{bnd}"
MIME-Version: 1.0

--{bnd}
Content-Type: text/plain; charset="us-ascii"


--{bnd}
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: base64

{b64(html.encode())}

--{bnd}
Content-Type: application/gzip; name="{name}"
Content-Description: {name}
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{b64(gz(xml))}

--{bnd}--
""")
    write("aggregate/maildir/tmp/.gitkeep", b"")

    # --- multi-report.zip: two reports, a directory entry and macOS junk ----------------------
    begin = day(2)
    org_a, org_b = "mail.reporter.example", "dmarc.isp.example"
    rid_a = f"{org_a}.{begin + DAY + 3600}.1187@dmarc-reports.{org_a}"
    rid_b = f"{org_b}.{begin + DAY + 5400}.6020@{org_b}"
    xml_a = isp_xml("aggregate/multi-report.zip#a", org_a, f"noreply@dmarc-reports.{org_a}", rid_a,
                    "example.org", begin, p="reject", kinds="own v6 fwd spoof")
    xml_b = isp_xml("aggregate/multi-report.zip#b", org_b, f"noreply@{org_b}", rid_b,
                    "example.com", begin, p="quarantine", kinds="own esp list broken")
    name_a = f"{org_a}!example.org!{begin}!{begin + DAY - 1}.xml"
    name_b = f"{org_b}!example.com!{begin}!{begin + DAY - 1}.xml"
    apple_double = (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02"
                    b"\x00\x00\x00\x09\x00\x00\x00\x32\x00\x00\x00\x20"
                    b"\x00\x00\x00\x02\x00\x00\x00\x52\x00\x00\x00\x00" + b"\x00" * 40)
    write("aggregate/multi-report.zip", zipped([
        ("reports/", None, None),
        ("reports/" + name_a, xml_a, zipfile.ZIP_DEFLATED),
        ("reports/" + name_b, xml_b, zipfile.ZIP_DEFLATED),
        ("__MACOSX/reports/._" + name_a, apple_double, zipfile.ZIP_DEFLATED),
    ]))


# --------------------------------------------------------------------------------------------
# aggregate/quirks/
# --------------------------------------------------------------------------------------------

def small(label, org, rid, domain, begin, records, **kw):
    """A small xs4all/OpenDMARC-shaped report for one quirk."""
    email = kw.pop("email", None) or f"noreply-dmarc@{org}"
    end = kw.pop("end", begin + DAY - 1)
    p = kw.pop("p", "reject")
    kw.setdefault("policy", (("adkim", "r"), ("aspf", "r"), ("p", p), ("sp", p), ("pct", "100"), ("fo", "1")))
    return feedback(label, org, email, rid, domain, begin, end, records, **kw)


def quirks():
    q = "aggregate/quirks/"

    # uppercase-enums.xml (X5, X6)
    d = "example.com"
    recs = [
        R("192.0.2.60", 148, "None", "Pass", "Pass", d, d, dkims=[dk(d, "s2026a", "Pass")],
          spfs=[sp(d, "Pass", "MFrom")]),
        R("203.0.113.90", 3, "REJECT", "FAIL", "FAIL", d, d, dkims=[dk(d, "s2026a", "TempError")],
          spfs=[sp(d, "hardfail", "MFrom"), sp("mx.badhost.example", "error", "HELO")]),
        R("198.51.100.61", 2, "Quarantine", "Fail", "FAIL", d, "relay.example.net",
          dkims=[dk("relay.example.net", "r1", "FAIL")],
          spfs=[sp(d, "SoftFail", "MFrom"), sp("relay.example.net", "unknown", "helo")]),
    ]
    write(q + "uppercase-enums.xml",
          small(q + "uppercase-enums.xml", "mailgate.example", "MG-20261001-000417", d, day(1, 10), recs,
                policy=(("adkim", "R"), ("aspf", "R"), ("p", "REJECT"), ("sp", "None"), ("pct", "100"),
                        ("fo", "0"))))

    # empty-elements.xml (X2, X3, X4) -- written by hand: every element is a deviation
    label = q + "empty-elements.xml"
    b = day(2, 10)
    register(label, "isp-mail.example", "isp-mail.example-20261002-31", "example.net", b, b + DAY - 1)
    write(label, f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>isp-mail.example</org_name>
    <email>dmarc@isp-mail.example</email>
    <extra_contact_info></extra_contact_info>
    <report_id>isp-mail.example-20261002-31</report_id>
    <date_range>
      <begin>{b}</begin>
      <end>{b + DAY - 1}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.net</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp></sp>
    <pct>100</pct>
    <fo></fo>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.81</source_ip>
      <count>12</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>fail</spf>
        <reason>
          <type></type>
          <comment></comment>
        </reason>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_from></envelope_from>
      <header_from>example.net</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.net</domain>
        <result>pass</result>
        <human_result/>
      </dkim>
      <spf>
        <domain>mx1.example.net</domain>
        <result>none</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>203.0.113.83</source_ip>
      <count>4</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>example.net</header_from>
    </identifiers>
    <auth_results/>
  </record>
</feedback>
""")

    # utf8-bom.xml (X13)
    d = "example.org"
    xml = small(q + "utf8-bom.xml", "reports.webhost.example", "wh-1790985600-0042", d, day(3, 10),
                typical(d, q + "utf8-bom.xml", "reject", "own spoof"), decl=DECL_UTF8)
    write(q + "utf8-bom.xml", b"\xef\xbb\xbf" + xml.encode("utf-8"))

    # utf16le-bom.xml (X13)
    d = "example.com"
    xml = small(q + "utf16le-bom.xml", "exchange.corp.example", "{3F2A9C10-7B4E-4D21-9A6F-1C0E5B7D2E48}", d,
                day(4, 10), typical(d, q + "utf16le-bom.xml", "quarantine", "own esp"), p="quarantine",
                extra="Zuständig: Postmaster-Team, Zürich", decl='<?xml version="1.0" encoding="UTF-16"?>\n')
    write(q + "utf16le-bom.xml", b"\xff\xfe" + xml.encode("utf-16-le"))

    # utf16be-no-bom.xml (X13): UTF-16 big-endian without a byte order mark
    d = "example.net"
    xml = small(q + "utf16be-no-bom.xml", "legacy-exchange.example", "lx-20261108-0016", d, day(8),
                typical(d, q + "utf16be-no-bom.xml", "reject", "own esp"),
                extra="Zuständig: Postmaster, Köln", decl='<?xml version="1.0" encoding="UTF-16"?>\n')
    data = xml.encode("utf-16-be")
    assert data[:2] == b"\x00<"
    write(q + "utf16be-no-bom.xml", data)

    # cr-line-endings.xml (X11): every line ends in CR alone (classic Mac OS)
    d = "example.org"
    xml = small(q + "cr-line-endings.xml", "classic-mac.example", "cm-20261108-0013", d, day(8),
                typical(d, q + "cr-line-endings.xml", "reject", "own esp spoof"), decl=DECL_PLAIN)
    assert "\r" not in xml
    write(q + "cr-line-endings.xml", xml.replace("\n", "\r"))

    # latin1-declared.xml (X13)
    d = "example.net"
    xml = small(q + "latin1-declared.xml", "Société Courriel Exemple", "sce-2026-10-05-0007", d, day(5, 10),
                typical(d, q + "latin1-declared.xml", "none", "own fwd"), p="none", email="dmarc@courriel.example",
                extra="Service postmaster, Genève", decl='<?xml version="1.0" encoding="ISO-8859-1"?>\n')
    write(q + "latin1-declared.xml", xml.encode("latin-1"))

    # invalid-utf8-bytes.xml (X12): windows-1252 quotes in a UTF-8 document
    d = "example.org"
    recs = typical(d, q + "invalid-utf8-bytes.xml", "reject", "own list")
    recs[1]["reasons"] = [("mailing_list", "forwarded by LQlist-relayRQ, signature broken")]
    xml = small(q + "invalid-utf8-bytes.xml", "legacy-mta.example", "lm-20261006-1193", d, day(6, 10), recs,
                decl=DECL_UTF8)
    raw = xml.encode("utf-8").replace(b"LQ", b"\x91").replace(b"RQ", b"\x92")
    assert raw.count(b"\x91") == 1 and raw.count(b"\x92") == 1
    write(q + "invalid-utf8-bytes.xml", raw)

    # control-char.xml (X12): a BEL inside <comment>
    d = "example.com"
    recs = typical(d, q + "control-char.xml", "reject", "own broken")
    recs[1]["reasons"] = [("local_policy", "arc=pass as=2 \x07cv=pass")]
    write(q + "control-char.xml",
          yahoo_style_small(q + "control-char.xml", "1791367261.774410", d, day(7, 10), recs))

    # fractional-timestamps.xml (X18)
    d = "example.net"
    b = day(1)
    write(q + "fractional-timestamps.xml",
          small(q + "fractional-timestamps.xml", "mailbox.example", "mbx-7f41c2e0", d, b,
                typical(d, q + "fractional-timestamps.xml", "quarantine", "own esp spoof"), p="quarantine",
                begin_text=f"{b}.0", end_text=f"{b + DAY - 1}.0"))

    # millisecond-timestamps.xml (X19)
    d = "example.org"
    write(q + "millisecond-timestamps.xml",
          small(q + "millisecond-timestamps.xml", "cloudmail.example", "cm-2026-11-01-a91f", d, b,
                typical(d, q + "millisecond-timestamps.xml", "reject", "own v6"),
                begin_text=f"{b}000", end_text=f"{b + DAY - 1}000"))

    # multi-week-range.xml (X18): 14 days
    d = "example.com"
    b = day(12, 10)
    write(q + "multi-week-range.xml",
          small(q + "multi-week-range.xml", "seg.gateway.example", "SEG-DMARC-2026-41-42", d, b,
                typical(d, q + "multi-week-range.xml", "quarantine", "own esp spoof"), p="quarantine", end=b + 14 * DAY - 1))

    # ip-forms.xml (X20)
    d = "example.net"
    forms = ["2001:db8::1", "2001:DB8:0:0:0:0:0:2", "2001:0db8:0000:0000:0000:0000:0000:0003",
             "::ffff:192.0.2.7", "2001:db8::5%eth0", " 192.0.2.40 ", "192.0.2.041", "[2001:db8::9]", "",
             "not-an-ip"]
    recs = []
    for i, ip in enumerate(forms):
        ok = i % 3 != 2
        recs.append(R(ip, i + 1, "none" if ok else "reject", "pass" if ok else "fail", "pass" if ok else "fail",
                      d, d, dkims=[dk(d, "v6sel", "pass" if ok else "fail")],
                      spfs=[sp(d, "pass" if ok else "fail")]))
    write(q + "ip-forms.xml",
          small(q + "ip-forms.xml", "v6.provider.example", "v6p-20261008-5", d, day(8, 10), recs))

    # identities-element.xml (X15)
    d = "example.org"
    write(q + "identities-element.xml",
          small(q + "identities-element.xml", "old-draft.reporter.example", "odr-1791504000", d, day(9, 10),
                typical(d, q + "identities-element.xml", "none", "own fwd"), p="none", version=None,
                ids_tag="identities", ident=("header_from",)))

    # two-policy-published.xml (X14)
    d = "example.com"
    xml = small(q + "two-policy-published.xml", "mx.hosting.example", "mxh-20261010-77", d, day(10, 10),
                typical(d, q + "two-policy-published.xml", "quarantine", "own spoof"), p="quarantine",
                policy=(("adkim", "r"), ("aspf", "r"), ("p", "quarantine"), ("sp", "quarantine"),
                        ("pct", "100"), ("fo", "1")))
    second = """  <policy_published>
    <domain>example.com</domain>
    <adkim>s</adkim>
    <aspf>s</aspf>
    <p>reject</p>
    <sp>reject</sp>
    <pct>100</pct>
    <fo>1</fo>
  </policy_published>
"""
    xml = xml.replace("  </policy_published>\n", "  </policy_published>\n" + second, 1)
    assert xml.count("<policy_published>") == 2
    write(q + "two-policy-published.xml", xml)

    # stray-xs-schema.xml (X10)
    d = "example.net"
    xml = small(q + "stray-xs-schema.xml", "retail-mail.example", "rm-20261011-0003", d, day(11, 10),
                typical(d, q + "stray-xs-schema.xml", "reject", "own spoof"), decl="")
    write(q + "stray-xs-schema.xml",
          DECL_UTF8 + '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                      'targetNamespace="http://dmarc.org/dmarc-xml/0.1">\n' + xml)

    # no-declaration-one-line.xml (X11)
    d = "example.org"
    write(q + "no-declaration-one-line.xml",
          small(q + "no-declaration-one-line.xml", "mail.portal.example", "mp.1791763200.19", d, day(12, 10),
                typical(d, q + "no-declaration-one-line.xml", "quarantine", "own esp spoof"), p="quarantine",
                decl="", indent="", nl=""))

    # zero-records.xml (RFC 7489: record is 1..unbounded)
    d = "example.com"
    write(q + "zero-records.xml",
          small(q + "zero-records.xml", "quiet-isp.example", "qi-20261013-0", d, day(13, 10), []))

    # no-version-legacy.xml (X1, X3): draft schema, no version/fo/selector/scope/envelope_from
    d = "example.net"
    write(q + "no-version-legacy.xml",
          small(q + "no-version-legacy.xml", "dmarc.legacy.example", "legacy-1791936000", d, day(14, 10),
                typical(d, q + "no-version-legacy.xml", "quarantine", "own fwd spoof"), p="quarantine", version=None,
                decl=DECL_PLAIN, policy=(("adkim", "r"), ("aspf", "r"), ("p", "quarantine"), ("pct", "100")),
                ident=("header_from",), dkim_keys=("domain", "result"), spf_keys=("domain", "result")))

    # prefixed-namespace.xml (X8): d: prefix on the dmarc-2.0 namespace
    d = "example.org"
    write(q + "prefixed-namespace.xml",
          small(q + "prefixed-namespace.xml", "ns-prefix.reporter.example", "nsp-20261015-8812", d,
                day(15, 10), typical(d, q + "prefixed-namespace.xml", "reject", "own v6 spoof"),
                decl=DECL_UTF8, root=f'feedback xmlns:d="{NS2}"', pfx="d:",
                policy=(("discovery_method", "treewalk"), ("p", "reject"), ("sp", "reject"), ("testing", "n"))))

    # dmarc2-with-pct-and-removed-reasons.xml (X9)
    d = "example.com"
    recs = typical(d, q + "dmarc2-with-pct-and-removed-reasons.xml", "quarantine", "own fwd spoof")
    recs[1]["reasons"] = [("forwarded", "known forwarder")]
    recs[2]["disp"] = "none"
    recs[2]["reasons"] = [("sampled_out", None)]
    write(q + "dmarc2-with-pct-and-removed-reasons.xml",
          small(q + "dmarc2-with-pct-and-removed-reasons.xml", "transition-mail.example", "tm-20261016-4410", d,
                day(16, 10), recs, decl=DECL_UTF8, root=f'feedback xmlns="{NS2}"',
                policy=(("p", "quarantine"), ("sp", "quarantine"), ("pct", "50"), ("fo", "1"))))

    # extensions.xml (RFC 9990 section 5)
    d = "example.net"
    ext_ns = "https://ext.reporter.example/dmarc/arc-summary-1.0"
    recs = typical(d, q + "extensions.xml", "reject", "own broken")
    recs[1]["tail"] = [(f'arc:arc_result xmlns:arc="{ext_ns}"', [("arc:chain", "pass"),
                                                                  ("arc:sealer", "forwarder.example")])]
    ext = ("extension", [(f'arc:arc_summary xmlns:arc="{ext_ns}"',
                          [("arc:definition", ext_ns), ("arc:sealed_messages", "9")])])
    write(q + "extensions.xml",
          small(q + "extensions.xml", "ext.reporter.example", "ext-20261017-0001", d, day(17, 10), recs,
                decl=DECL_UTF8, root=f'feedback xmlns="{NS2}"', ext=ext,
                meta_tail=[("generator", "ext-reporter 0.9")],
                policy=(("p", "reject"), ("sp", "reject"), ("np", "reject"), ("testing", "n"))))

    # many-dkim-results.xml (X24): one record with 120 DKIM results
    d = "example.org"
    dkims = [dk(d, "s2026a", "pass")]
    for i in range(1, 120):
        dkims.append(dk(f"signer{i:03d}.relay.example", f"k{i % 7}", ["pass", "fail", "neutral"][i % 3]))
    recs = [R("198.51.100.140", 37, "none", "pass", "fail", d, "relay.example.net", dkims=dkims,
              spfs=[sp("relay.example.net", "pass")])]
    write(q + "many-dkim-results.xml",
          small(q + "many-dkim-results.xml", "relay.bigsender.example", "rbs-20261018-0120", d, day(18, 10), recs,
                indent=" "))

    # multiple-errors-generator.xml (X16)
    d = "example.com"
    write(q + "multiple-errors-generator.xml",
          small(q + "multiple-errors-generator.xml", "verbose-reporter.example", "vr-20261019-0002", d,
                day(19, 10), typical(d, q + "multiple-errors-generator.xml", "quarantine", "own spoof"), p="quarantine",
                extra=('extra_contact_info xml:lang="en"', "https://verbose-reporter.example/dmarc"),
                meta_tail=[('error lang="en"', "DNS timeout while fetching _dmarc.example.com, cached record used"),
                           ('error lang="en"', 'unknown tag "rpt" in the DMARC record ignored'),
                           ('error lang="de"', 'Syntaxfehler im Tag "fo", Standardwert 0 verwendet'),
                           ("generator", "verbose-reporter 3.2.0 (build 2026.09)")]))

    # missing-org-name.xml (X22)
    d = "example.net"
    write(q + "missing-org-name.xml",
          small(q + "missing-org-name.xml", None, "rmh-20261020-15", d, day(20, 10),
                typical(d, q + "missing-org-name.xml", "reject", "own spoof"),
                email="dmarc-noreply@reports.mailhost.example"))

    # gzip-multimember.xml.gz: two gzip members, split mid-document
    d = "example.org"
    xml = small(q + "gzip-multimember.xml.gz", "stream.reporter.example", "srx-20261021-2", d, day(21, 10),
                typical(d, q + "gzip-multimember.xml.gz", "reject", "own esp spoof")).encode()
    half = len(xml) // 2
    write(q + "gzip-multimember.xml.gz", gz(xml[:half]) + gz(xml[half:]))

    # gzip-trailing-junk.xml.gz
    d = "example.com"
    xml = small(q + "gzip-trailing-junk.xml.gz", "padded.reporter.example", "prx-20261022-9", d, day(22, 10),
                typical(d, q + "gzip-trailing-junk.xml.gz", "quarantine", "own fwd"), p="quarantine")
    write(q + "gzip-trailing-junk.xml.gz", gz(xml) + b"\x00" * 8 + b"junk")

    # zip-containing-gzip.zip (M4, nesting)
    d = "example.net"
    b = day(23, 10)
    xml = small(q + "zip-containing-gzip.zip", "archive.reporter.example", "arx-20261023-3", d, b,
                typical(d, q + "zip-containing-gzip.zip", "reject", "own v6 spoof"))
    write(q + "zip-containing-gzip.zip",
          zipped([(f"archive.reporter.example!{d}!{b}!{b + DAY - 1}.xml.gz", gz(xml), zipfile.ZIP_STORED)]))

    # wrong-extension.zip (M5): gzip bytes under a .zip name
    d = "example.org"
    write(q + "wrong-extension.zip",
          gz(small(q + "wrong-extension.zip", "secure-gw.example", "sgw-20261024-5521", d, day(24, 10),
                   typical(d, q + "wrong-extension.zip", "quarantine", "own esp spoof"), p="quarantine")))

    # comment-before-declaration.xml (issue 10): a generator's comment before the declaration
    d = "example.org"
    write(q + "comment-before-declaration.xml",
          "<!-- generated by dmarc-exporter 2.4 on appliance mx1.appliance.example -->\n"
          + small(q + "comment-before-declaration.xml", "appliance.reporter.example", "apl-20261110-0007", d,
                  day(10), typical(d, q + "comment-before-declaration.xml", "reject", "own spoof"), decl=DECL_UTF8))

    # whitespace-before-declaration.xml (issue 10): blank lines and spaces before the declaration
    d = "example.net"
    write(q + "whitespace-before-declaration.xml",
          "\n\n   " + small(q + "whitespace-before-declaration.xml", "blank-start.reporter.example",
                              "bsr-20261111-3", d, day(11), typical(d, q + "whitespace-before-declaration.xml",
                                                                    "quarantine", "own esp"), p="quarantine",
                              decl=DECL_PLAIN))

    # period-ends-after-midnight.xml (issue 10): a period of 87,483 s (a day and 18 minutes), as
    # self-hosted appliances write it: an ordinary daily report, not a long one
    d = "example.com"
    b = day(12)
    write(q + "period-ends-after-midnight.xml",
          small(q + "period-ends-after-midnight.xml", "selfhosted.reporter.example", "shr-20261112-1", d, b,
                typical(d, q + "period-ends-after-midnight.xml", "reject", "own fwd spoof"), end=b + 87483))

    quirk_mails(q)


def yahoo_style_small(label, rid, domain, begin, records):
    return feedback(label, "yahoo.example", "dmarchelp@yahooinc.example", rid, domain, begin, begin + DAY - 1,
                    records, version=None, policy=(("adkim", "r"), ("aspf", "r"), ("p", "reject"), ("pct", "100")),
                    decl=DECL_PLAIN, sfx="\t", ident=("header_from",), spf_keys=("domain", "result"))


def quirk_mails(q):
    # cr-line-endings.eml (M14): a report mail whose lines end in CR alone
    d = "example.com"
    b = day(9)
    org = "cr.reporter.example"
    rid = f"{org}.{b}.13"
    xml = small(q + "cr-line-endings.eml", org, rid, d, b, typical(d, q + "cr-line-endings.eml", "reject", "own spoof"))
    mail = isp_mail(gz(xml), org=org, sender=f"noreply-dmarc@{org}", rid=rid, domain=d, begin=b,
                    to="dmarc-reports@example.com", arrived=b + DAY + 3100,
                    text="DMARC aggregate report (saved on a system whose lines end in CR).")
    assert "\r" not in mail
    write(q + "cr-line-endings.eml", mail.replace("\n", "\r"))

    # blank-line-before-headers.eml and spaces-line-before-headers.eml (issue 10): report mails
    # saved by tools that put an empty line, or a line of spaces, before the header section
    for name, lead, d, b, org in [
        ("blank-line-before-headers.eml", "\n", "example.org", day(13), "saved.reporter.example"),
        ("spaces-line-before-headers.eml", "    \t\n", "example.net", day(14), "archived.reporter.example"),
    ]:
        rid = f"{org}.{b}.{len(lead)}"
        xml = small(q + name, org, rid, d, b, typical(d, q + name, "reject", "own esp spoof"))
        write(q + name, lead + isp_mail(gz(xml), org=org, sender=f"noreply-dmarc@{org}", rid=rid, domain=d, begin=b,
                                        to="dmarc-reports@example.com", arrived=b + DAY + 2900,
                                        text="DMARC aggregate report (the saved mail starts with a blank line)."))

    # signed-with-pdf-summary.eml (issue 10): a report mail, S/MIME-signed, with a PDF summary
    # beside its gzip report: the summary and the signature are not presented as the report
    # (a part presented so by the subject alone is one only when nothing else can be read)
    d = "example.com"
    b = day(15)
    org = "signed.reporter.example"
    rid = f"sr-{b}-15"
    xml = small(q + "signed-with-pdf-summary.eml", org, rid, d, b, typical(d, q + "signed-with-pdf-summary.eml",
                                                                            "reject", "own esp spoof"))
    name = f"{org}!{d}!{b}!{b + DAY - 1}.xml.gz"
    arrived = b + DAY + 4100
    pdf = b"%PDF-1.4\n" + junk("signed-with-pdf-summary.pdf", 500)
    p7s = b"\x30\x82\x05\x8a\x06\x09" + junk("signed-with-pdf-summary.p7s", 400)
    write(q + "signed-with-pdf-summary.eml", f"""Return-Path: <dmarc-noreply@{org}>
Received: from mail.{org} (mail.{org} [198.51.100.150])
\tby mx.{d} (Postfix) with ESMTPS id 2B3C4D5E6F
\tfor <dmarc-reports@{d}>; {maildate(arrived)}
From: DMARC Reports <dmarc-noreply@{org}>
To: dmarc-reports@{d}
Subject: Report Domain: {d} Submitter: {org} Report-ID: <{rid}>
Date: {maildate(arrived - 20)}
Message-ID: <{rid}@{org}>
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;
\tboundary="signed-15"

This is a cryptographically signed message in MIME format.

--signed-15
Content-Type: multipart/mixed; boundary="mixed-15"

--mixed-15
Content-Type: text/plain; charset=us-ascii

The DMARC aggregate report for {d} is attached, with a summary as PDF.

--mixed-15
Content-Type: application/gzip; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{b64(gz(xml))}
--mixed-15
Content-Type: application/pdf; name="summary"
Content-Disposition: attachment; filename="summary"
Content-Transfer-Encoding: base64

{b64(pdf)}
--mixed-15--

--signed-15
Content-Type: application/pkcs7-signature; name="smime.p7s"
Content-Disposition: attachment; filename="smime.p7s"
Content-Transfer-Encoding: base64

{b64(p7s)}
--signed-15--
""")

    # base64-no-padding.eml (M10)
    d = "example.com"
    b = day(25, 10)
    org = "b64.reporter.example"
    rid = f"{org}.{b}.25"
    xml = small(q + "base64-no-padding.eml", org, rid, d, b, typical(d, q + "base64-no-padding.eml", "reject",
                                                                     "own esp spoof"))
    data = gz(xml)
    assert len(data) % 3 != 0, "padding would be empty: change the report"
    mail = isp_mail(data, org=org, sender=f"noreply-dmarc@{org}", rid=rid, domain=d, begin=b,
                    to="dmarc-reports@example.com", arrived=b + DAY + 4000, pad=False,
                    text="DMARC aggregate report (base64 written without trailing '=' padding).")
    assert "=\n\n--" not in mail
    write(q + "base64-no-padding.eml", mail)

    # quoted-printable-text-xml.eml (M9): uncompressed text/xml, quoted-printable
    d = "example.net"
    b = day(26, 10)
    org = "plain.reporter.example"
    rid = f"pr-{b}-0026"
    recs = typical(d, q + "quoted-printable-text-xml.eml", "quarantine", "own list spoof")
    recs[1]["reasons"] = [("mailing_list", "list server lists.example.org rewrote the Subject and footer; "
                                           "DKIM body hash no longer matches, delivered without action")]
    xml = small(q + "quoted-printable-text-xml.eml", org, rid, d, b, recs, p="quarantine",
                extra="Postmaster-Team — https://plain.reporter.example/dmarc?lang=de&view=full", decl=DECL_UTF8)
    qp = quopri.encodestring(xml.encode("utf-8")).decode("ascii")
    assert "=3D" in qp and "=\n" in qp
    name = f"{org}!{d}!{b}!{b + DAY - 1}.xml"
    arrived = b + DAY + 5000
    write(q + "quoted-printable-text-xml.eml", f"""Return-Path: <dmarc@{org}>
Received: from smtp.{org} (smtp.{org} [198.51.100.144])
\tby mx.{d} (Postfix) with ESMTPS id 1A2B3C4D5E
\tfor <dmarc-reports@{d}>; {maildate(arrived)}
From: DMARC Reporter <dmarc@{org}>
To: dmarc-reports@{d}
Subject: Report Domain: {d} Submitter: {org} Report-ID: <{rid}>
Date: {maildate(arrived - 30)}
Message-ID: <{rid}@{org}>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_qp_report_0026"

--=_qp_report_0026
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

The aggregate report is attached as uncompressed XML.

--=_qp_report_0026
Content-Type: text/xml; charset=utf-8; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: quoted-printable

{qp}
--=_qp_report_0026--
""")

    # x-gzip-80col-crlf.eml (M3, M10)
    d = "example.org"
    b = day(27, 10)
    org = "rspamd.reporter.example"
    rid = f"{b}.{b + DAY - 1}@{org}"
    xml = small(q + "x-gzip-80col-crlf.eml", org, rid, d, b,
                typical(d, q + "x-gzip-80col-crlf.eml", "reject", "own v6 spoof"))
    data = gz(xml)
    name = f"{org}!{d}!{b}!{b + DAY - 1}.xml.gz"
    arrived = b + DAY + 600
    bnd = f"--=_{hash_int(rid) % 10 ** 12:012d}"
    body = b64(data, width=80)
    assert max(len(line) for line in body.split("\n")) == 80
    write(q + "x-gzip-80col-crlf.eml", crlf(f"""Return-Path: <noreply-dmarc@{org}>
Received: from mail.{org} (mail.{org} [203.0.113.25])
\tby mx.{d} (Postfix) with ESMTPS id 4ZqM1n2P3Q4R
\tfor <dmarc-reports@{d}>; {maildate(arrived)}
From: "Rspamd" <noreply-dmarc@{org}>
To: dmarc-reports@{d}
Date: {maildate(arrived - 1)}
Subject: Report Domain: {d}
\tSubmitter: {org}
\tReport-ID: <{rid}>
MIME-Version: 1.0
Message-ID: <{rid}>
Content-Type: multipart/mixed;
\tboundary="{bnd}"

This is a multipart message in MIME format.

--{bnd}
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 7bit

This is an aggregate report from {org}.

Report domain: {d}
Submitter: {org}
Report ID: <{rid}>

--{bnd}
Content-Type: application/x-gzip
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="{name}"

{body}
--{bnd}--
"""))

    # x-zip-compressed.eml (M3, M4)
    d = "example.com"
    b = day(28, 10)
    org = "exchange-gw.example"
    rid = f"exgw-{b}-0028"
    xml = small(q + "x-zip-compressed.eml", org, rid, d, b,
                typical(d, q + "x-zip-compressed.eml", "quarantine", "own broken spoof"), p="quarantine")
    name = f"{org}!{d}!{b}!{b + DAY - 1}"
    data = zipped([(name + ".xml", xml, zipfile.ZIP_DEFLATED)])
    write(q + "x-zip-compressed.eml",
          isp_mail(data, org=org, sender=f"dmarc@{org}", rid=rid, domain=d, begin=b, to="dmarc-reports@example.com",
                   arrived=b + DAY + 9000, ctype="application/x-zip-compressed", filename=name + ".zip",
                   text="Attached is the DMARC aggregate report (zip)."))

    # single-part-gzip-no-mime-version.eml (M6)
    d = "example.net"
    b = day(29, 10)
    org = "gateway.mailsec.example"
    rid = f"msx-{b}-82734"
    xml = small(q + "single-part-gzip-no-mime-version.eml", org, rid, d, b,
                typical(d, q + "single-part-gzip-no-mime-version.eml", "reject", "own esp spoof"))
    name = f"{org}!{d}!{b}!{b + DAY - 1}.xml.gz"
    arrived = b + DAY + 3333
    write(q + "single-part-gzip-no-mime-version.eml", f"""Return-Path: <dmarc-reports@{org}>
Received: from relay.{org} (relay.{org} [192.0.2.213])
\tby mx.{d} (Postfix) with ESMTPS id 0F1E2D3C4B
\tfor <dmarc-reports@{d}>; {maildate(arrived)}
From: dmarc-reports@{org}
To: dmarc-reports@{d}
Subject: Report Domain: {d} Submitter: {org} Report-ID: {rid}
Date: {maildate(arrived - 2)}
Message-ID: <{rid}@{org}>
Content-Type: application/gzip; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{b64(gz(xml))}
""")


# --------------------------------------------------------------------------------------------
# aggregate/not-reports/
# --------------------------------------------------------------------------------------------

def not_reports():
    n = "aggregate/not-reports/"
    write(n + "yahoo-unused.xml.gz", gz(b"unused"))

    arrived = day(4) + 50000
    write(n + "human-reply.eml", f"""Return-Path: <carol@example.org>
Received: from [203.0.113.140] (vpn-140.example.org [203.0.113.140])
\tby mx.example.com (Postfix) with ESMTPSA id 5E6F7A8B9C
\tfor <dmarc-reports@example.com>; {maildate(arrived, 60)}
From: Carol Consultant <carol@example.org>
To: dmarc-reports@example.com
Subject: Re: your DMARC setup
Date: {maildate(arrived - 60, 60)}
Message-ID: <re-dmarc-setup-2@example.org>
In-Reply-To: <dmarc-setup-1@example.com>
References: <dmarc-setup-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hi Dave,

thanks for the details. Your record looks fine:

  _dmarc.example.com. TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.com"

Once the aggregate reports show no failures from your ESP for two weeks,
move to p=reject. I'll have a look at the first reports next Monday.

Best,
Carol

On {maildate(arrived - 86400, 60)}, Dave wrote:
> Could you check whether our DMARC record is right before we tighten
> the policy?
""")

    # reply-with-attachment.eml (issue 10): a person answers a report mail (its subject quoted)
    # and attaches a document: a reply, so its attachment is not presented as a report
    arrived = day(4) + 52000
    bnd = "reply-0042-boundary"
    pdf = b"%PDF-1.4\n% not a report\n" + junk("reply-with-attachment", 300)
    write(n + "reply-with-attachment.eml", f"""Return-Path: <dave@example.com>
Received: from [198.51.100.20] (office.example.com [198.51.100.20])
\tby mx.example.com (Postfix) with ESMTPSA id 6F7A8B9C0D
\tfor <dmarc-reports@example.com>; {maildate(arrived, 60)}
From: Dave Admin <dave@example.com>
To: dmarc-reports@example.com
Subject: Re: Report Domain: example.com Submitter: google.example Report-ID: 4902317586213098471
Date: {maildate(arrived - 60, 60)}
Message-ID: <re-report-4902@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="{bnd}"

--{bnd}
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Carol, the failures from 198.51.100.61 in this report are our CRM. Our SPF
change is in the attached document.

Dave

--{bnd}
Content-Type: application/pdf; name="spf-change.pdf"
Content-Disposition: attachment; filename="spf-change.pdf"
Content-Transfer-Encoding: base64

{b64(pdf)}
--{bnd}--
""")

    arrived = day(4) + 61000
    bnd = "9A2C1DEB60.1793606000/mx.example.net"
    write(n + "bounce.eml", f"""Return-Path: <>
Received: by mx.example.net (Postfix)
\tid 9A2C1DEB60; {maildate(arrived)}
Date: {maildate(arrived)}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: dmarc-reports@example.net
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{bnd}"
Content-Transfer-Encoding: 8bit
Message-Id: <20261104165640.9A2C1DEB60@mx.example.net>

This is a MIME-encapsulated message.

--{bnd}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<postmaster@unknown-host.example>: host mail.unknown-host.example[192.0.2.199]
    said: 550 5.1.1 <postmaster@unknown-host.example>: Recipient address
    rejected: User unknown in virtual mailbox table (in reply to RCPT TO
    command)

--{bnd}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 9A2C1DEB60
X-Postfix-Sender: rfc822; dmarc-reports@example.net
Arrival-Date: {maildate(arrived - 4)}

Final-Recipient: rfc822; postmaster@unknown-host.example
Original-Recipient: rfc822;postmaster@unknown-host.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.unknown-host.example
Diagnostic-Code: smtp; 550 5.1.1 <postmaster@unknown-host.example>: Recipient
    address rejected: User unknown in virtual mailbox table

--{bnd}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <dmarc-reports@example.net>
Received: from [192.0.2.77] (laptop.example.net [192.0.2.77])
\tby mx.example.net (Postfix) with ESMTPSA id 9A2C1DEB60
\tfor <postmaster@unknown-host.example>; {maildate(arrived - 4)}
From: dmarc-reports@example.net
To: postmaster@unknown-host.example
Subject: Your DMARC record points rua at us
Date: {maildate(arrived - 10)}
Message-ID: <question-1@example.net>

--{bnd}--
""")

    begin = day(3)
    rid = "2b9e4f61a0c84d7e93f5c1a6d8e0b274"
    html = html_summary("example.com", begin, begin + DAY,
                        typical("example.com", n + "html-only-preview.eml", "quarantine", "own esp spoof"))
    arrived = day(4) + 15000
    write(n + "html-only-preview.eml", f"""Received: from DM6PR11MB4123.namprd11.prod.outlook.example (2001:db8:6a0::1c) by
 mx.example.com with ESMTPS id 4ZqN2m3K4Lz5; {maildate(arrived)}
From: DMARC Aggregate Report <dmarcreport@microsoft.example>
To: <dmarc-reports@example.com>
Subject: [Preview] Report Domain: example.com Submitter: enterprise.protection.outlook.example
 Report-ID: {rid}
Date: {maildate(arrived - 4, pad_day=False)}
Message-ID: <{rid}@dmarc.microsoft.example>
Content-Language: en-US
X-MS-Has-Attach:
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: base64
MIME-Version: 1.0

{b64(html.encode("utf-8"))}
""")


# --------------------------------------------------------------------------------------------
# aggregate/rejected/
# --------------------------------------------------------------------------------------------

def rejected():
    r = "aggregate/rejected/"

    def plain(label, org, rid, domain, begin, **kw):
        recs = kw.pop("records", None) or typical(domain, label, "reject", "own spoof")
        return small(label, org, rid, domain, begin, recs, **kw)

    # xxe.xml (S1)
    xml = plain(r + "xxe.xml", "&xxe;", "xxe-20261105-1", "example.com", day(5), decl="",
                email="dmarc@xxe-probe.example")
    xml = xml.replace("&amp;xxe;", "&xxe;")
    write(r + "xxe.xml", DECL_UTF8 + '<!DOCTYPE feedback [\n  <!ELEMENT feedback ANY>\n'
                                     '  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n' + xml)

    # billion-laughs.xml (S2)
    ents = ['  <!ENTITY lol "lol">']
    prev = "lol"
    for i in range(1, 10):
        ents.append(f'  <!ENTITY lol{i} "' + f"&{prev};" * 10 + '">')
        prev = f"lol{i}"
    xml = plain(r + "billion-laughs.xml", "laughs.example", "bl-20261105-1", "example.net", day(5), decl="",
                extra="&lol9;")
    xml = xml.replace("&amp;lol9;", "&lol9;")
    write(r + "billion-laughs.xml", DECL_UTF8 + "<!DOCTYPE feedback [\n" + "\n".join(ents) + "\n]>\n" + xml)

    # external-dtd.xml (S1)
    xml = plain(r + "external-dtd.xml", "dtd-fetcher.example", "dtd-20261105-1", "example.org", day(5), decl="")
    write(r + "external-dtd.xml", DECL_UTF8 + '<!DOCTYPE feedback SYSTEM "http://dtd.example/x.dtd">\n' + xml)

    # truncated.xml.gz: the first half of a gzip stream
    xml = plain(r + "truncated.xml.gz", "cutoff.example", "co-20261106-1", "example.com", day(6),
                records=typical("example.com", r + "truncated.xml.gz", "reject", "own v6 esp fwd spoof"))
    data = gz(xml)
    write(r + "truncated.xml.gz", data[:len(data) // 2])

    # end-before-begin.xml
    b = day(6)
    write(r + "end-before-begin.xml",
          plain(r + "end-before-begin.xml", "clockskew.example", "cs-20261106-1", "example.net", b, end=b - 1))

    # missing-report-id.xml
    b = day(6)
    xml = plain(r + "missing-report-id.xml", "forgetful.example", None, "example.org", b, key=False)
    assert "<report_id>" not in xml
    register(r + "missing-report-id.xml", "forgetful.example", None, "example.org", b, b + DAY - 1)
    write(r + "missing-report-id.xml", xml)

    # negative-count.xml
    recs = typical("example.com", r + "negative-count.xml", "reject", "own esp spoof")
    recs[1]["count"] = -5
    write(r + "negative-count.xml",
          plain(r + "negative-count.xml", "overflow.example", "of-20261107-1", "example.com", day(7), records=recs))

    # count-too-large.xml: a count of 20 digits, beyond any 64-bit integer
    recs = typical("example.net", r + "count-too-large.xml", "reject", "own esp spoof")
    recs[1]["count"] = 99999999999999999999
    write(r + "count-too-large.xml",
          plain(r + "count-too-large.xml", "bigcount.example", "bc-20261108-1", "example.net", day(8), records=recs))

    # year-9999-seconds.xml: a date range in the year 9999, in seconds (12 digits: not milliseconds)
    b = calendar.timegm((9999, 12, 31, 0, 0, 0))
    assert len(str(b)) == 12
    write(r + "year-9999-seconds.xml",
          plain(r + "year-9999-seconds.xml", "far-future.example", "ff-99991231-1", "example.org", b))

    # mime-nesting-11.eml: a report mail whose attachment sits in 11 nested multiparts
    xml = plain(r + "mime-nesting-11.eml", "nested.reporter.example", "nr-20261108-11", "example.com", day(8))
    leaf = ('Content-Type: application/gzip; name="report.xml.gz"\nContent-Transfer-Encoding: base64\n\n'
            + b64(gz(xml)) + "\n")
    mail = ("From: noreply-dmarc@nested.reporter.example\nTo: dmarc-reports@example.com\n"
            "Subject: Report Domain: example.com Submitter: nested.reporter.example Report-ID: nr-20261108-11\n"
            "Date: " + maildate(day(9) + 600) + "\nMessage-ID: <nr-20261108-11@nested.reporter.example>\n"
            "MIME-Version: 1.0\n")
    mail += "".join(f'Content-Type: multipart/mixed; boundary="level-{n}"\n\n--level-{n}\n' for n in range(11))
    mail += leaf + "".join(f"\n--level-{n}--\n" for n in reversed(range(11)))
    write(r + "mime-nesting-11.eml", mail)

    # zip-part-not-zip.eml (issue 10): a Google-style report mail whose application/zip part,
    # named like Google's reports, holds bytes that are not a zip (a damaged attachment)
    d = "example.net"
    b = day(7)
    mail = google_mail("", "9187244035517730261", d, b, "dmarc-reports@example.net", b + DAY + 21000)
    head, _, _ = mail.partition("\n\n")
    damaged = junk("zip-part-not-zip", 1400)
    assert not damaged.startswith((b"PK", b"\x1f\x8b"))
    write(r + "zip-part-not-zip.eml", crlf(head + "\n\n" + b64(damaged) + "\n"))

    # report-subject-unreadable-attachment.eml (issue 10): a report mail (by its subject) whose
    # only attachment is application/octet-stream without a report's name, and not a report
    d = "example.org"
    b = day(7)
    org = "gateway.reporter.example"
    rid = f"gw-{b}-77"
    damaged = junk("report-subject-unreadable", 900)
    write(r + "report-subject-unreadable-attachment.eml",
          isp_mail(damaged, org=org, sender=f"dmarc@{org}", rid=rid, domain=d, begin=b, to="dmarc-reports@example.org",
                   arrived=b + DAY + 7000, ctype="application/octet-stream", filename="report-attachment",
                   text="This is a DMARC aggregate report (the attachment was damaged on the way)."))

    # not-well-formed.xml: mismatched end tag
    xml = plain(r + "not-well-formed.xml", "sloppy-xml.example", "sx-20261107-1", "example.net", day(7))
    xml = xml.replace("</policy_evaluated>", "</policy_evaluate>", 1)
    assert "</policy_evaluate>" in xml
    write(r + "not-well-formed.xml", xml)

    # gzip-bomb.xml.gz (S3): a report that opens normally, then 20 MiB of blanks inside
    # <feedback>: a parser that keeps reading expands it all; ours stops at the ratio cap.
    bomb_xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n' + b" " * (20 << 20) + b"</feedback>\n"
    bomb = gz(bomb_xml)
    assert len(bomb) < 30000 and (20 << 20) / len(bomb) > 250
    write(r + "gzip-bomb.xml.gz", bomb)

    # zip-bomb.zip (S3): the same inside a zip entry
    bomb = zipped([("report.xml", bomb_xml, zipfile.ZIP_DEFLATED)])
    assert len(bomb) < 30000
    write(r + "zip-bomb.zip", bomb)


# --------------------------------------------------------------------------------------------
# forensic/: failure (RUF) reports and other ARF feedback reports
# --------------------------------------------------------------------------------------------

def fake_dkim(d, s, ts, seed, h="From:To:Subject:Date:Message-ID:MIME-Version"):
    """A DKIM-Signature header of the usual shape; bh= and b= are stable hashes of `seed`,
    not real signatures."""
    bh = base64.b64encode(hashlib.sha256(("bh:" + seed).encode()).digest()).decode()
    sig = base64.b64encode(hashlib.sha512(("b1:" + seed).encode()).digest()
                           + hashlib.sha512(("b2:" + seed).encode()).digest()
                           + hashlib.sha512(("b3:" + seed).encode()).digest()
                           + hashlib.sha512(("b4:" + seed).encode()).digest()).decode()
    lines = "\n\t ".join(sig[i:i + 68] for i in range(0, len(sig), 68))
    return (f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={d}; s={s};\n"
            f"\tt={ts}; bh={bh};\n"
            f"\th={h};\n"
            f"\tb={lines}")


def arf(head, bnd, parts, preamble="This is a multi-part message in MIME format."):
    """A multipart mail: `head` is the top header section (no blank line at its end) and
    `parts` are (part headers, part body) pairs; every body ends with a newline."""
    out = head + "\n" + ("\n" + preamble + "\n" if preamble else "")
    for headers, body in parts:
        assert body.endswith("\n")
        out += f"\n--{bnd}\n{headers}\n\n{body}"
    return out + f"\n--{bnd}--\n"


def forensic():
    f = "forensic/"
    mids = set()

    def mid(value):
        assert value not in mids, value
        mids.add(value)
        return value

    # --- google-arf.eml: Google-style DMARC failure report, whole original, CRLF ------------
    t = day(3) + 9 * 3600 + 14 * 60 + 7            # the original arrives at the receiver
    sent = t + 1811                                 # the report is written
    orig_mid = mid("<20261103091402.7d41c2a0@billing.example.com>")
    original = f"""Received: from mta-45.mailout.example (mta-45.mailout.example [203.0.113.45])
        by mx.google.example with ESMTPS id 5b1f17b1804b1-47a9c0e3d1fsi8812345a.114
        for <bob@example.net>;
        {maildate(t, -480, pad_day=False)}
{fake_dkim("example.com", "s2026", t - 2, "google-arf original")}
From: Example Billing <billing@example.com>
To: Bob Builder <bob@example.net>
Subject: Invoice 2026-11
Date: {maildate(t - 3, 60)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: 7bit

Dear Bob,

please find the details of invoice 2026-11 below.

  Amount due: 1,240.00 EUR
  Due date:   2026-11-17

Pay through the customer portal to avoid late fees.

Example Billing
"""
    feedback = f"""Feedback-Type: auth-failure
User-Agent: Gmail-Example/1.0
Version: 1
Original-Mail-From: <billing@example.com>
Arrival-Date: {maildate(t, -480, pad_day=False)}
Source-IP: 203.0.113.45
Reported-Domain: example.com
Authentication-Results: mx.google.example;
       dkim=fail header.i=@example.com header.s=s2026 header.b=Qm9ndXNz;
       spf=softfail (google.example: domain of transitioning billing@example.com does not designate 203.0.113.45 as permitted sender) smtp.mailfrom=billing@example.com;
       dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=example.com
Auth-Failure: dmarc
Identity-Alignment: dkim
DKIM-Domain: example.com
DKIM-Selector: s2026
"""
    bnd = "000000000000b4c1e7f20a6d3e91"
    head = f"""Return-Path: <noreply-dmarc-support@google.example>
Received: from mail-sor-f41.google.example (mail-sor-f41.google.example [2001:db8:4860:4864::29])
\tby mx.example.com (Postfix) with ESMTPS id 4ZqR0s1T2u3V
\tfor <dmarc-failures@example.com>; {maildate(sent + 3)}
MIME-Version: 1.0
Date: {maildate(sent, -480)}
Message-ID: <0000000000007a3e15064f2c1d88@google.example>
Subject: FW: Invoice 2026-11
From: noreply-dmarc-support@google.example
To: dmarc-failures@example.com
Content-Type: multipart/report; report-type=feedback-report; boundary="{bnd}\""""
    human = (f"This is an authentication failure report for an email message received from IP\n"
             f"203.0.113.45 on {maildate(t, -480, pad_day=False)}.\n")
    write(f + "google-arf.eml", crlf(arf(head, bnd, [
        ('Content-Type: text/plain; charset="UTF-8"', human),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: message/rfc822", original),
    ], preamble="")))

    # --- microsoft-arf.eml: Outlook.com-style, headers only, Reporting-MTA, two recipients ---
    t = day(4) + 14 * 3600 + 2 * 60 + 51
    sent = t + 95
    orig_mid = mid("<a3f9e1c2.7b04.4d2e.9c11.5e6f70819203@mailer.example.net>")
    original = f"""Received: from smtp.bulkrelay.example (198.51.100.23) by
 BN8PR12MB3345.namprd12.prod.outlook.example (2001:db8:408:6b::19) with
 Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8158.12; {maildate(t, pad_day=False)}
From: Example Net Support <support@example.net>
To: Alice Walker <alice.w@outlook.example>, Dan Kim <dan.k@hotmail.example>
Subject: Your password expires today
Date: {maildate(t - 40, -300)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable
X-Mailer: PHPMailer 6.9.1
"""
    feedback = f"""Feedback-Type: auth-failure
Version: 1
User-Agent: Microsoft-DMARC-Example/1.0
Reporting-MTA: dns; BN8PR12MB3345.namprd12.prod.outlook.example
Original-Mail-From: <support@example.net>
Original-Rcpt-To: <alice.w@outlook.example>
Original-Rcpt-To: <dan.k@hotmail.example>
Arrival-Date: {maildate(t, pad_day=False)}
Source-IP: 198.51.100.23
Source-Port: 50321
Reported-Domain: example.net
Authentication-Results: spf=fail (sender IP is 198.51.100.23)
 smtp.mailfrom=example.net; dkim=none (message not signed)
 header.d=none;dmarc=fail action=oreject header.from=example.net;compauth=fail
 reason=000
Auth-Failure: dmarc
Delivery-Result: reject
Identity-Alignment: dkim,spf
"""
    bnd = "_004_BN8PR12MB334551A2C7E8F0D94B6A1C3FBN8PR12MB3345namp_"
    head = f"""Received: from NAM12-BN8-obe.outbound.protection.outlook.example (2001:db8:2a01:111::5) by
 mx.example.net with ESMTPS id 4ZqS8t9U0v1W; {maildate(sent + 2)}
From: DMARC Failure Report <dmarcreport@microsoft.example>
To: <dmarc-failures@example.net>
Subject: [DMARC Failure Report] Your password expires today
Date: {maildate(sent, pad_day=False)}
Message-ID: <BN8PR12MB334551A2C7E8F0D94B6A1C3F@BN8PR12MB3345.namprd12.prod.outlook.example>
Content-Language: en-US
X-MS-Has-Attach:
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{bnd}\""""
    human = ("This is a DMARC failure report for an email message that claimed to be from\n"
             "example.net and failed DMARC authentication. The message was rejected.\n\n"
             "  Source IP:     198.51.100.23\n"
             "  Header From:   example.net\n"
             "  Recipients:    2\n")
    write(f + "microsoft-arf.eml", arf(head, bnd, [
        ('Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: 7bit', human),
        ("Content-Type: message/feedback-report", feedback),
        ('Content-Type: text/rfc822-headers; charset="us-ascii"', original),
    ], preamble=""))

    # --- yahoo-arf.eml: Received-Date (historic), Incidents: 3, IPv6 source ------------------
    t = day(5) + 20 * 3600 + 33 * 60 + 12
    sent = t + 3 * 3600 + 7
    orig_mid = mid("<nl-2026-11.8871@news.example.org>")
    original = f"""Received: from out-1f.esp-mailer.example (EHLO out-1f.esp-mailer.example) ([2001:db8:a0b:12f0::1f])
  by mta1082.mail.gq1.yahoo.example with ESMTPS; {maildate(t, pad_day=False)}
{fake_dkim("esp-mailer.example", "k1", t - 9, "yahoo-arf original", h="from:to:subject:date:message-id:list-unsubscribe")}
From: Example Org Newsletter <news@example.org>
To: carol@yahoo.example
Subject: November newsletter
Date: {maildate(t - 12, 60)}
Message-ID: {orig_mid}
List-Unsubscribe: <mailto:unsubscribe-8871@esp-mailer.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hello Carol,

this month: the autumn meetup, two new volunteer teams and the
results of our member survey.

See you soon,
The Example Org team
"""
    feedback = f"""Feedback-Type: auth-failure
Version: 1
User-Agent: Yahoo!-Mail-Example-Feedback/2.0
Original-Mail-From: <bounce-8871@esp-mailer.example>
Received-Date: {maildate(t, -480, pad_day=False)}
Source-IP: 2001:db8:a0b:12f0::1f
Incidents: 3
Reported-Domain: example.org
Authentication-Results: mta1082.mail.gq1.yahoo.example; dkim=pass header.i=@esp-mailer.example header.s=k1; spf=pass smtp.mailfrom=esp-mailer.example; dmarc=fail(p=QUARANTINE) header.from=example.org;
Auth-Failure: dmarc
Identity-Alignment: none
DKIM-Domain: esp-mailer.example
DKIM-Selector: k1
"""
    bnd = f"_----------=_{sent}1149231"
    head = f"""Received: from sonic302-21.consmr.mail.gq1.yahoo.example (sonic302-21.consmr.mail.gq1.yahoo.example [198.51.100.132])
\tby mx.example.org (Postfix) with ESMTP id 2C4D6E8F0A
\tfor <dmarc-failures@example.org>; {maildate(sent + 1, pad_day=False)}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{bnd}"
Date: {maildate(sent, -480, pad_day=False)}
From: Yahoo DMARC <dmarc-noreply@yahoo.example>
To: dmarc-failures@example.org
Subject: FW: November newsletter
Message-Id: <{sent}.8871.dmarc-ruf@yahoo.example>"""
    human = ("This is an email authentication failure report for a message that claimed to be\n"
             "from example.org. The same message was seen 3 times.\n")
    write(f + "yahoo-arf.eml", arf(head, bnd, [
        ("Content-Disposition: inline\nContent-Transfer-Encoding: 7bit\nContent-Type: text/plain", human),
        ("Content-Disposition: inline\nContent-Transfer-Encoding: 7bit\nContent-Type: message/feedback-report",
         feedback),
        ("Content-Disposition: inline\nContent-Transfer-Encoding: 7bit\nContent-Type: message/rfc822", original),
    ]))

    # --- opendmarc-arf.eml: Source-IP with a host name, no Arrival-Date, no Identity-Alignment
    t = day(6) + 7 * 3600 + 45 * 60 + 30
    sent = t + 2
    job = "4ZqT5d6F7gHk"
    orig_mid = mid("<bf-preview-2026.55213@mail.sender.example>")
    original = f"""Return-Path: <newsletter@example.com>
Received: from mail.sender.example (mail.sender.example [198.51.100.7])
\tby mx.isp.example (Postfix) with ESMTP id {job}
\tfor <erin@isp.example>; {maildate(t, 60)}
From: Example Deals <deals@example.com>
To: erin@isp.example
Subject: Black Friday preview: 40% off
Date: {maildate(t - 25, 60)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1_55213"
"""
    feedback = f"""Feedback-Type: auth-failure
Version: 1
User-Agent: OpenDMARC-Filter/1.4.2
Auth-Failure: dmarc
Authentication-Results: mx.isp.example; dmarc=fail header.from=example.com
Original-Envelope-Id: {job}
Original-Mail-From: newsletter@example.com
Source-IP: 198.51.100.7 (mail.sender.example)
Reported-Domain: example.com
"""
    bnd = f"{job}.{sent}/mx.isp.example"
    head = f"""Return-Path: <opendmarc@mx.isp.example>
Received: by mx.isp.example (Postfix)
\tid 7A8B9C0D1E; {maildate(sent, 60)}
Date: {maildate(sent, 60)}
From: OpenDMARC Filter <opendmarc@mx.isp.example>
To: dmarc-failures@example.com
Subject: DMARC failure report for job {job}
Message-ID: <{job}.{sent}@mx.isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{bnd}\""""
    human = (f"This is an authentication failure report for an email message received from IP\n"
             f"198.51.100.7 on {maildate(t, 60)}.\n")
    write(f + "opendmarc-arf.eml", arf(head, bnd, [
        ("Content-Type: text/plain", human),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: text/rfc822-headers", original),
    ], preamble=""))

    # --- linkedin-style-arf.eml: base64 feedback part, free-text Delivery-Result, extension --
    t = day(7) + 16 * 3600 + 8 * 60 + 44
    sent = t + 600
    orig_mid = mid("<CAJx8f2c1a-9d3e-4b7f-a6c5-0e2d4f6a8b1c@recruiting.example.com>")
    original = f"""Received: from out-214.mailer.example (out-214.mailer.example [192.0.2.214])
\tby mx-ruf.linkedin.example with ESMTPS id 8f2c1a9d3e4b
\tfor <frank@linkedin.example>; {maildate(t, -480)}
{fake_dkim("mailer.example", "m1", t - 5, "linkedin-style-arf original")}
From: Example Recruiting <recruiting@example.com>
To: Frank Ocean <frank@linkedin.example>
Subject: Job offer: Senior platform engineer
Date: {maildate(t - 7, 60)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

Hi Frank,

we are hiring a senior platform engineer (remote, full time) and your
profile looks like a great fit. Reply with your CV to start.

Example Recruiting
"""
    fields = f"""Feedback-Type: auth-failure
User-Agent: LinkedIn-Example-DMARC/2.4
Version: 1
Original-Mail-From: <bounces+214@mailer.example>
Original-Rcpt-To: <frank@linkedin.example>
Arrival-Date: {maildate(t, -480)}
Source-IP: 192.0.2.214
Reported-Domain: example.com
Authentication-Results: mx-ruf.linkedin.example; dkim=pass header.d=mailer.example; spf=pass smtp.mailfrom=mailer.example; dmarc=fail (p=quarantine) header.from=example.com
Auth-Failure: dmarc
Identity-Alignment: dkim, spf
Delivery-Result: Message rejected by policy
X-Reporter-Score: 7
"""
    bnd = "----=_Part_8814402_1726351093.1793984324000"
    head = f"""Return-Path: <dmarc-ruf@linkedin.example>
Received: from mx-ruf.linkedin.example (mx-ruf.linkedin.example [198.51.100.190])
\tby mx.example.com (Postfix) with ESMTPS id 1B2C3D4E5F
\tfor <dmarc-failures@example.com>; {maildate(sent + 4)}
Date: {maildate(sent)}
From: LinkedIn DMARC <dmarc-ruf@linkedin.example>
To: dmarc-failures@example.com
Message-ID: <1793984324000.8814402.ruf@linkedin.example>
Subject: FW: Job offer: Senior platform engineer
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{bnd}\""""
    human = "This is a DMARC failure report for a message claiming to be from example.com.\n"
    write(f + "linkedin-style-arf.eml", arf(head, bnd, [
        ("Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 7bit", human),
        ("Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64",
         b64(crlf(fields).encode("ascii")) + "\n"),
        ("Content-Type: message/rfc822\nContent-Disposition: inline", original),
    ], preamble=""))

    # --- headers-only-arf.eml: the required fields only, Auth-Failure: spf, SPF-DNS ---------
    t = day(8) + 11 * 3600 + 19 * 60 + 3
    sent = t + 45
    orig_mid = mid("<stmt-2026-11-0088@accounts.example.net>")
    original = f"""Return-Path: <accounts@example.net>
Received: from relay.cheapmail.example (relay.cheapmail.example [203.0.113.88])
\tby mail.smallisp.example with ESMTP id 0C1D2E3F4A
\tfor <grace@smallisp.example>; {maildate(t)}
From: Example Net Accounts <accounts@example.net>
To: grace@smallisp.example
Subject: Statement for November
Date: {maildate(t - 15)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
"""
    feedback = """Feedback-Type: auth-failure
User-Agent: smallisp-arf/0.9
Version: 1
Auth-Failure: spf
Authentication-Results: mail.smallisp.example; spf=fail smtp.mailfrom=example.net
Identity-Alignment: spf
Reported-Domain: example.net
SPF-DNS: txt : example.net : "v=spf1 ip4:192.0.2.0/25 include:_spf.esp.example -all"
"""
    bnd = "arf-0C1D2E3F4A"
    head = f"""From: postmaster@smallisp.example
To: dmarc-failures@example.net
Subject: FW: Statement for November
Date: {maildate(sent)}
Message-ID: <arf-0C1D2E3F4A@mail.smallisp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{bnd}\""""
    write(f + "headers-only-arf.eml", arf(head, bnd, [
        ("Content-Type: text/plain", "SPF authentication failure report.\n"),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: text/rfc822-headers", original),
    ], preamble=""))

    # --- plain-text-exim.eml: Exim/cPanel report in words, no feedback part (F1) ------------
    t = day(9) + 4 * 3600 + 27 * 60 + 58
    sent = t + 1
    orig_mid = mid("<payslip-11-2026.3391@example.com>")
    write(f + "plain-text-exim.eml", f"""Return-Path: <>
Received: from mailnull by server42.webhost.example with local (Exim 4.98)
\tid 1vQx7T-0004aB-2k
\tfor dmarc-failures@example.com; {maildate(sent)}
From: Mail Delivery System <Mailer-Daemon@server42.webhost.example>
To: dmarc-failures@example.com
Subject: DMARC Failure Report for example.com
Date: {maildate(sent)}
Message-Id: <E1vQx7T-0004aB-2k@server42.webhost.example>
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

A message claiming to be from you has failed the published DMARC
policy for your domain.

  Sender Domain: example.com
  Sender IP Address: 192.0.2.166
  Received Date: {maildate(t)}
  SPF Alignment: no
  DKIM Alignment: no
  DMARC Results: Reject

------ This is a copy of the headers that were received before the error
       was detected.

Received: from [192.0.2.166] (port=51544 helo=payroll-mailer.example)
\tby server42.webhost.example with esmtp (Exim 4.98)
\t(envelope-from <payroll@example.com>)
\tid 1vQx7S-0004a7-1P
\tfor henry@webhost-customer.example; {maildate(t)}
From: "Example Payroll" <payroll@example.com>
To: henry@webhost-customer.example
Subject: Payslip November 2026
Date: {maildate(t - 31)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
X-Mailer: Microsoft Outlook 16.0
""")

    # --- abuse-report.eml: an RFC 5965 abuse report (a feedback loop), not DMARC ------------
    t = day(10) + 18 * 3600 + 5 * 60 + 9
    sent = t + 2 * 3600 + 11
    orig_mid = mid("<sale-weekend-8812.1794334000@shop.example.org>")
    original = f"""Received: from mail.example.org (mail.example.org [192.0.2.25])
\tby mx3.mailbox.example with ESMTPS id 6Ab7Cd8Ef9
\tfor <ivan@mailbox.example>; {maildate(t)}
{fake_dkim("example.org", "shop1", t - 4, "abuse-report original",
           h="From:To:Subject:Date:Message-ID:List-Unsubscribe:MIME-Version")}
From: Example Shop <offers@shop.example.org>
To: ivan@mailbox.example
Subject: Weekend sale: 20% off garden tools
Date: {maildate(t - 6, 60)}
Message-ID: {orig_mid}
List-Unsubscribe: <https://shop.example.org/unsubscribe?u=8812>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

This weekend only: 20% off all garden tools.
Shop now: https://shop.example.org/sale
"""
    feedback = f"""Feedback-Type: abuse
User-Agent: MailboxFBL/3.1
Version: 1
Original-Mail-From: <bounces+8812@example.org>
Original-Rcpt-To: <ivan@mailbox.example>
Arrival-Date: {maildate(t)}
Reporting-MTA: dns; mx3.mailbox.example
Source-IP: 192.0.2.25
Authentication-Results: mx3.mailbox.example;
 spf=pass smtp.mailfrom=example.org;
 dkim=pass header.d=example.org
Reported-Domain: example.org
Reported-Uri: https://shop.example.org/sale
Removal-Recipient: ivan@mailbox.example
"""
    bnd = "fbl_6Ab7Cd8Ef9_boundary"
    head = f"""From: Mailbox Feedback Loop <fbl@feedback.mailbox.example>
Date: {maildate(sent)}
Subject: Abuse report: Weekend sale: 20% off garden tools
To: abuse@example.org
Message-ID: <fbl-6Ab7Cd8Ef9@feedback.mailbox.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
    boundary="{bnd}\""""
    human = (f"This is an email abuse report for an email message received from IP\n"
             f"192.0.2.25 on {maildate(t)}. A user of mailbox.example marked it as spam.\n")
    write(f + "abuse-report.eml", arf(head, bnd, [
        ('Content-Type: text/plain; charset="US-ASCII"\nContent-Transfer-Encoding: 7bit', human),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: message/rfc822\nContent-Disposition: inline", original),
    ], preamble=""))

    # --- forwarded-arf.eml: a human forwards a DMARC ARF report as message/rfc822 -----------
    t = day(11) + 8 * 3600 + 50 * 60 + 17
    sent = t + 900
    orig_mid = mid("<agenda-2026-11-12.77@board.example.net>")
    original = f"""Received: from gw.office-relay.example (gw.office-relay.example [203.0.113.9])
\tby inbound.mailhost.example with ESMTPS id 3E4F5A6B7C
\tfor <judy@mailhost.example>; {maildate(t)}
{fake_dkim("example.net", "board", t - 3, "forwarded-arf original")}
From: Example Net Board <board@example.net>
To: judy@mailhost.example
Subject: Board meeting agenda
Date: {maildate(t - 8, 60)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
"""
    feedback = f"""Feedback-Type: auth-failure
User-Agent: Mailhost-RUF/1.7
Version: 1
Original-Mail-From: <board@example.net>
Arrival-Date: {maildate(t)}
Source-IP: 203.0.113.9
Reported-Domain: example.net
Authentication-Results: inbound.mailhost.example; dmarc=fail header.from=example.net
Auth-Failure: dmarc
Identity-Alignment: dkim
DKIM-Domain: example.net
DKIM-Identity: @example.net
DKIM-Selector: board
"""
    ibnd = "ruf-3E4F5A6B7C"
    inner = arf(f"""From: Mailhost Failure Reports <ruf@mailhost.example>
To: kevin@example.net
Subject: FW: Board meeting agenda
Date: {maildate(sent)}
Message-ID: <ruf-3E4F5A6B7C@mailhost.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{ibnd}\"""", ibnd, [
        ("Content-Type: text/plain", "An authentication failure report for example.net.\n"),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: text/rfc822-headers", original),
    ], preamble="")
    arrived = sent + 2 * DAY + 5400
    bnd = "------------fwdB7C8D9E0F1A2B3C4"
    write(f + "forwarded-arf.eml", f"""Return-Path: <kevin@example.net>
Received: from [192.0.2.78] (desk-78.example.net [192.0.2.78])
\tby mx.example.net (Postfix) with ESMTPSA id 5D6E7F8A9B
\tfor <dmarc-failures@example.net>; {maildate(arrived, 60)}
Message-ID: <2f6a9c1e-4b8d-4e02-b3a7-6c1d9e0f2a58@example.net>
Date: {maildate(arrived - 20, 60)}
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
From: Kevin Admin <kevin@example.net>
To: dmarc-failures@example.net
Subject: Fwd: FW: Board meeting agenda
Content-Type: multipart/mixed; boundary="{bnd}"

This is a multi-part message in MIME format.
--{bnd}
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Hi,

this one came to my own address instead of the reports mailbox.
Forwarding it as an attachment.

Kevin

--{bnd}
Content-Type: message/rfc822; name="FW Board meeting agenda.eml"
Content-Disposition: attachment; filename="FW Board meeting agenda.eml"

{inner}
--{bnd}--
""")

    # --- missing-fields-arf.eml: no Feedback-Type, User-Agent, Authentication-Results (F2) --
    t = day(12) + 13 * 3600 + 37 * 60 + 41
    sent = t + 240
    orig_mid = mid("<ship-44120@orders.example.org>")
    original = f"""Received: from smtp.parcel-notify.example (smtp.parcel-notify.example [203.0.113.201])
\tby filter.securemail.example with ESMTP id 9F8E7D6C5B
\tfor <laura@securemail.example>; {maildate(t)}
{fake_dkim("example.org", "mail2026", t - 2, "missing-fields-arf original")}
From: Example Orders <orders@example.org>
To: laura@securemail.example
Subject: Shipping confirmation #44120
Date: {maildate(t - 9, 60)}
Message-ID: {orig_mid}
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Your order #44120 has shipped and should arrive within 3 days.
Track it at https://orders.example.org/track/44120
"""
    feedback = f"""Version: 1
Auth-Failure: dmarc
Original-Mail-From: <orders@example.org>
Arrival-Date: {maildate(t)}
Source-IP: 203.0.113.201
Reported-Domain: example.org
Identity-Alignment: dkim
DKIM-Domain: example.org
DKIM-Selector: mail2026
"""
    bnd = "==securemail-9F8E7D6C5B=="
    head = f"""From: SecureMail Filter <dmarc@filter.securemail.example>
To: dmarc-failures@example.org
Subject: FW: Shipping confirmation #44120
Date: {maildate(sent)}
Message-ID: <9F8E7D6C5B.ruf@filter.securemail.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{bnd}\""""
    write(f + "missing-fields-arf.eml", arf(head, bnd, [
        ("Content-Type: text/plain", "DMARC failure report for example.org.\n"),
        ("Content-Type: message/feedback-report", feedback),
        ("Content-Type: message/rfc822", original),
    ], preamble=""))

    # The store recognises a failure report it has seen by the sha256 of the mail's body:
    # every sample here must have its own.
    seen = {}
    for rel in WRITTEN:
        if rel.startswith(f):
            with open(os.path.join(HERE, rel), "rb") as fh:
                data = fh.read()
            sep = b"\r\n\r\n" if b"\r\n" in data else b"\n\n"
            digest = hashlib.sha256(data.split(sep, 1)[1]).hexdigest()
            assert digest not in seen, (rel, seen.get(digest))
            seen[digest] = rel
    assert len(seen) == 10, sorted(seen.values())


# --------------------------------------------------------------------------------------------
# tlsrpt/: SMTP TLS reports (RFC 8460)
# --------------------------------------------------------------------------------------------

TLS_KEYS = {}


def tls_register(label, report):
    """A TLS report's natural key: organization, report id and date range."""
    key = (report["organization-name"], report["report-id"], report["date-range"]["start-datetime"],
           report["date-range"]["end-datetime"])
    if key in TLS_KEYS:
        raise SystemExit(f"natural key of {label} repeats the one of {TLS_KEYS[key]}: {key}")
    TLS_KEYS[key] = label


def utc(ts, seconds=True):
    t = time.gmtime(ts)
    text = f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}"
    return text + (f":{t.tm_sec:02d}" if seconds else "")


def tls_report(org, contact, rid, begin, policies, end=None):
    return {
        "organization-name": org,
        "date-range": {"start-datetime": utc(begin) + "Z", "end-datetime": utc(end or begin + DAY - 1) + "Z"},
        "contact-info": contact,
        "report-id": rid,
        "policies": policies,
    }


def sts_policy(domain, mxs, mode="enforce", max_age=604800):
    return ["version: STSv1", f"mode: {mode}"] + [f"mx: {mx}" for mx in mxs] + [f"max_age: {max_age}"]


def failure(result, count, sending=None, mx=None, receiving=None, **extra):
    entry = {"result-type": result}
    if sending:
        entry["sending-mta-ip"] = sending
    if receiving:
        entry["receiving-ip"] = receiving
    if mx:
        entry["receiving-mx-hostname"] = mx
    entry["failed-session-count"] = count
    entry.update(extra)
    return entry


def compact(value):
    return json.dumps(value, separators=(",", ":"))


def tls_mail(head, boundary, text_part, filename, gz_bytes, description=None):
    """multipart/report; report-type=tlsrpt: a human-readable part and the gzipped report."""
    desc = f"Content-Description:\n {filename}\n" if description else ""
    return f"""{head}

--{boundary}
{text_part}

--{boundary}
Content-Type: application/tlsrpt+gzip;
\tname="{filename}"
{desc}Content-Disposition: attachment;
\tfilename="{filename}"
Content-Transfer-Encoding: base64

{b64(gz_bytes)}

--{boundary}--
"""


def tlsrpt():
    t = "tlsrpt/"

    # google-mail.eml: Google's shape. One-line JSON, `mx-host` as an array, sending and
    # receiving IPs on every failure detail, the report gzipped in a multipart/report mail.
    begin = day(1)
    report = tls_report("google.example", "smtp-tls-reporting@google.example", f"{utc(begin)}Z_example.com", begin, [{
        "policy": {
            "policy-type": "sts",
            "policy-string": sts_policy("example.com", ["mx1.example.com", "mx2.example.com"]),
            "policy-domain": "example.com",
            "mx-host": ["mx1.example.com", "mx2.example.com"],
        },
        "summary": {"total-successful-session-count": 1835, "total-failure-session-count": 12},
        "failure-details": [
            failure("certificate-expired", 9, "2001:db8:4860:4::1a", "mx2.example.com", "203.0.113.25"),
            failure("certificate-expired", 2, "2001:db8:4860:4::1b", "mx2.example.com", "203.0.113.25"),
            failure("sts-webpki-invalid", 1, "192.0.2.141", "mx1.example.com", "203.0.113.24"),
        ],
    }])
    tls_register(t + "google-mail.eml", report)
    name = f"google.example!example.com!{begin}!{begin + DAY - 1}!001.json.gz"
    bnd = "000000000000a1b2c3d4e5f60718"
    arrived = begin + DAY + 3 * 3600 + 611
    head = f"""Return-Path: <noreply-smtp-tls-reporting@google.example>
Received: by mail-qk1.google.example with SMTP id 9f2c01a7b3e4d5;
        {maildate(arrived, -480)}
MIME-Version: 1.0
Date: {maildate(arrived, -480)}
TLS-Report-Domain: example.com
TLS-Report-Submitter: google.example
Message-ID: <000000000000f47cc505e8c8905c@google.example>
Subject: Report Domain: example.com Submitter: google.example Report-ID: <{utc(begin).replace(':', '.').replace('-', '.')}Z+example.com@google.example>
From: noreply-smtp-tls-reporting@google.example
To: tlsrpt@example.com
Content-Type: multipart/report; boundary="{bnd}"; report-type=tlsrpt"""
    text = 'Content-Type: text/plain; charset="UTF-8"; format=flowed; delsp=yes\n\nThis is an aggregate TLS report from google.example'
    write(t + "google-mail.eml", tls_mail(head, bnd, text, name, gz(compact(report))))

    # microsoft-mail.eml: Microsoft's shape. Date-times without a UTC offset, no `mx-host`,
    # a TLSA policy whose policy-string holds a JSON array in one string, a failure detail
    # without addresses, a Report-ID without angle brackets folded onto its own line.
    begin = day(1)
    rid = "133925885310113267+example.net"
    report = {
        "organization-name": "Microsoft.example Corporation",
        "date-range": {"start-datetime": utc(begin), "end-datetime": utc(begin + DAY - 1)},
        "contact-info": "tlsrpt-noreply@microsoft.example",
        "report-id": rid,
        "policies": [{
            "policy": {
                "policy-type": "sts",
                "policy-string": sts_policy("example.net", ["*.mail.example.net"], max_age=2592000),
                "policy-domain": "example.net",
            },
            "summary": {"total-successful-session-count": 402, "total-failure-session-count": 3},
            "failure-details": [failure("sts-policy-fetch-error", 3)],
        }, {
            "policy": {
                "policy-type": "tlsa",
                "policy-string": [json.dumps([
                    "3 1 1 6007EEE553E85D8DF007A845D19EC343283D4E416E9A33F9EF3040C8B7C285BC",
                    "3 1 1 837C773D54C2E2BD71871A3FC352BE8214D5646CBAE5E3091401A7274717998B",
                ], separators=(",", ":"))],
                "policy-domain": "example.net",
            },
            "summary": {"total-successful-session-count": 57, "total-failure-session-count": 0},
        }],
    }
    tls_register(t + "microsoft-mail.eml", report)
    name = f"microsoft.example!example.net!{begin}!{begin + DAY - 1}!133925885310113267.json.gz"
    bnd = "_5f2e8c1a-7b3d-4e9f-a6c2-0d1b8e7f6a52_"
    arrived = begin + DAY + 5 * 3600 + 562
    head = f"""Return-Path: <tlsrpt-noreply@microsoft.example>
From: <tlsrpt-noreply@microsoft.example>
To: "tlsrpt@example.net" <tlsrpt@example.net>
Date: {maildate(arrived)}
Subject: Report Domain: example.net Submitter: microsoft.example Report-ID:
 {rid}
TLS-Report-Domain: example.net
TLS-Report-Submitter: microsoft.example
MIME-Version: 1.0
Message-ID: <{rid}@example.net>
Content-Type: multipart/report;
\tboundary="{bnd}"; report-type=tlsrpt
X-MS-PublicTrafficType: Email"""
    text = ('Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: quoted-printable\n\n'
            "This is an aggregate TLS report from microsoft.example")
    write(t + "microsoft-mail.eml", tls_mail(head, bnd, text, name, gz(compact(report)), description=True))

    # dane-tlsa-failures.json: a DANE-only sender's report, pretty-printed: a `tlsa` policy
    # with its records, `mx-host` as the RFC's string, and failures of every DANE result
    # type with HELO, reason codes and an additional-information URI.
    begin = day(2)
    records = ["3 1 1 2B9F1C0E4D7A6B5C8E3F2A1D0C9B8A7E6F5D4C3B2A19080706F5E4D3C2B1A09F",
               "2 1 1 0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0"]
    report = tls_report("Sender Example Mail", "tlsrpt@mail.sender.example", "tlsrpt-20261102-example.org-7",
                        begin, [{
        "policy": {
            "policy-type": "tlsa",
            "policy-string": records,
            "policy-domain": "example.org",
            "mx-host": "mx.example.org",
        },
        "summary": {"total-successful-session-count": 410, "total-failure-session-count": 57},
        "failure-details": [
            failure("tlsa-invalid", 31, "192.0.2.10", "mx.example.org", "198.51.100.25",
                    **{"receiving-mx-helo": "mx.example.org ESMTP ready",
                       "failure-reason-code": "no TLSA record matches the certificate chain",
                       "additional-information": "https://tlsrpt.sender.example/detail/20261102-7#tlsa"}),
            failure("dnssec-invalid", 20, "192.0.2.10", "mx.example.org", "198.51.100.25",
                    **{"failure-reason-code": "SERVFAIL for _25._tcp.mx.example.org TLSA"}),
            failure("dane-required", 4, "192.0.2.11", "mx-backup.example.org", "198.51.100.26"),
            failure("validation-failure", 2, "192.0.2.11", "mx-backup.example.org", "198.51.100.26",
                    **{"failure-reason-code": "X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION"}),
        ],
    }])
    tls_register(t + "dane-tlsa-failures.json", report)
    write(t + "dane-tlsa-failures.json", json.dumps(report, indent=2) + "\n")

    # no-policy-found.json: a Postfix-style reporter (tlsrpt-reporter) whose
    # `no-policy-found` entry has no policy-domain (CHECKLIST T3).
    begin = day(3)
    report = tls_report("relay.example", "noreply-tlsrpt@relay.example", f"{utc(begin)}Z_example.com", begin, [{
        "policy": {"policy-type": "no-policy-found"},
        "summary": {"total-successful-session-count": 88, "total-failure-session-count": 0},
        "failure-details": [],
    }], end=begin + DAY)
    tls_register(t + "no-policy-found.json", report)
    write(t + "no-policy-found.json", json.dumps(report, indent=4) + "\n")

    # The RFC's recommended file name for a gzipped report, as a file on its own: the RFC 8460
    # shape (`mx-host` a string), an MTA-STS policy in testing mode, STARTTLS not offered.
    begin = day(3)
    report = tls_report("mail.sender.example", "sts-reporting@mail.sender.example",
                        "5e0c4b1a-93d7-4f26-8b1e-7a2c9d4f6e10", begin, [{
        "policy": {
            "policy-type": "sts",
            "policy-string": sts_policy("example.org", ["*.mail.example.org"], mode="testing", max_age=86400),
            "policy-domain": "example.org",
            "mx-host": "*.mail.example.org",
        },
        "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 203},
        "failure-details": [
            failure("starttls-not-supported", 200, "2001:db8:abcd:13::1", "mx2.mail.example.org", "203.0.113.56"),
            failure("certificate-host-mismatch", 3, "198.51.100.62", "mx1.mail.example.org", "203.0.113.55"),
        ],
    }])
    name = f"mail.sender.example!example.org!{begin}!{begin + DAY - 1}!001.json.gz"
    tls_register(t + name, report)
    write(t + name, gz(json.dumps(report, indent=1)))

    # quirks/: deviations, one file each or a few together.
    q = t + "quirks/"
    begin = day(4)
    report = {
        "organization-name": "quirky.example",
        "date-range": {"start-datetime": utc(begin + 3600, seconds=False) + "+01:00",
                       "end-datetime": utc(begin + DAY - 1) + "+00:00"},
        "contact-info": "tlsrpt@quirky.example",
        "report-id": "qx-20261104",
        "x-report-generator": "quirkmta 0.9",
        "policies": [{
            "policy": {
                "policy-type": "STS",
                "policy-string": sts_policy("example.com", ["mx.example.com"]),
                "policy-domain": "Example.COM",
                "mx-host-pattern": "mx.example.com",
            },
            "summary": {"total-successful-session-count": "120", "total-failure-session-count": "5"},
            "failure-details": [
                {"result-type": "sts-policy-expired", "sending-mta-ip": "2001:DB8:0:0:0:0:0:25",
                 "receiving-mx-hostname": "mx.example.com", "failed-session-count": "4",
                 "additional-info-uri": "https://quirky.example/tls/qx-20261104/1"},
                {"result-type": "validation-failure", "sending-mta-ip": "192.0.2.041",
                 "receiving-mx-hostname": "mx.example.com", "failed-session-count": 1.0,
                 "failure-error-code": "X509_V_ERR_CERT_HAS_EXPIRED"},
            ],
        }],
    }
    tls_register(q + "strings-offsets-aliases.json", report)
    write(q + "strings-offsets-aliases.json", json.dumps(report, indent=2) + "\n")

    begin = day(5)
    report = tls_report("idle.example", None, "idle-20261105", begin, [])
    tls_register(q + "no-policies.json", report)
    write(q + "no-policies.json", json.dumps(report, indent=2) + "\n")

    begin = day(5)
    report = tls_report("server.example", "postmaster@server.example", "1793836800_example.net", begin, {
        "policy": {
            "policy-type": "sts",
            "policy-string": sts_policy("example.net", ["mx.example.net"], max_age=86400),
            "policy-domain": "example.net",
            "mx-host": ["mx: mx.example.net"],
        },
        "summary": {"total-successful-session-count": 17, "total-failure-session-count": 0},
    })
    tls_register(q + "policies-object-mx-lines.json", report)
    write(q + "policies-object-mx-lines.json", json.dumps(report, indent=4) + "\n")

    # rejected/: what cannot be read.
    r = t + "rejected/"
    begin = day(6)
    report = tls_report("broken.example", "tlsrpt@broken.example", "br-20261106", begin, [{
        "policy": {"policy-type": "sts", "policy-domain": "example.com", "mx-host": ["mx.example.com"]},
        "summary": {"total-successful-session-count": 10, "total-failure-session-count": 1},
        "failure-details": [failure("starttls-not-supported", 1, "192.0.2.7", "mx.example.com",
                                    **{"additional-information": "https://broken.example/r/ br-20261106"})],
    }])
    text = json.dumps(report, indent=2)
    # A URL broken across a line inside a string, as printed in RFC 8460 Appendix B.
    text = text.replace("/r/ br-20261106", "/r/\n      br-20261106")
    write(r + "bad-json.json", text + "\n")

    deep = ('{"organization-name": "deep.example", "report-id": "deep-1", "policies": '
            + "[" * 12000 + "]" * 12000 + "}\n")
    assert len(deep) < 30000
    write(r + "json-bomb-deep.json", deep)

    wide = ('{"organization-name": "wide.example", "report-id": "wide-1", "policies": [{"failure-details": ['
            + "0," * 150000 + "0]}]}\n")
    wide_gz = gz(wide)
    # Under the decompression ratio check's first megabyte: the JSON limits must stop it.
    assert len(wide) < (1 << 20) and len(wide_gz) < 30000
    write(r + "json-bomb-wide.json.gz", wide_gz)

    begin = day(7)
    report = tls_report("negative.example", "tlsrpt@negative.example", "neg-20261107", begin, [{
        "policy": {"policy-type": "sts", "policy-domain": "example.org", "mx-host": ["mx.example.org"]},
        "summary": {"total-successful-session-count": 10, "total-failure-session-count": -4},
    }])
    tls_register(r + "negative-count.json", report)
    write(r + "negative-count.json", json.dumps(report, indent=2) + "\n")

    # not-reports/: JSON and JSON-like text that is not a TLS report.
    n = t + "not-reports/"
    write(n + "package.json", json.dumps({
        "name": "dmarc-dashboard", "version": "1.4.2", "private": True,
        "scripts": {"build": "vite build"}, "dependencies": {"chart.js": "^4.4.0"},
    }, indent=2) + "\n")
    write(n + "sts-policy-lines.json", json.dumps(sts_policy("example.com", ["mx.example.com"]), indent=1) + "\n")
    write(n + "preview-notice.txt",
          "[Preview] This mailbox receives TLS reports for example.com.\n"
          "Reports arrive once a day; nothing to do here.\n")

# --------------------------------------------------------------------------------------------

def main():
    reporter_shapes()
    mailboxes()
    quirks()
    not_reports()
    rejected()
    forensic()
    tlsrpt()
    for rel in WRITTEN:
        size = os.path.getsize(os.path.join(HERE, rel))
        limit = 30000 if "bomb" in rel else 30 * 1024
        assert size < limit, (rel, size)
    print(f"wrote {len(WRITTEN)} files under {os.path.relpath(HERE)}/ ({len(KEYS)} distinct report keys, "
          f"{len(TLS_KEYS)} TLS report keys)")


if __name__ == "__main__":
    main()
