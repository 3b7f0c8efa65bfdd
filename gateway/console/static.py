"""The console's style sheet and script: a few kilobytes, served by the gateway itself (no CDN, no build).

Colours are chosen for a contrast of at least 4.5:1 for text (most are far above); focus is always
visible; the print style leaves out navigation and buttons so a report prints as a letter. The script
only enhances: every page works without it (print button, confirmation before a withdrawal, "working"
labels on slow actions).
"""

from __future__ import annotations

import hashlib

CSS = """\
:root{--ink:#1b1f24;--muted:#4d5966;--link:#0b57d0;--line:#c4cbd3;--head:#10324f;--paper:#fff;--soft:#f3f5f7;
--ok:#14532d;--ok-bg:#e7f4ea;--bad:#8a1c1c;--bad-bg:#fdecec;--warn:#6b4200;--warn-bg:#fff4e0;--info:#163f6b;
--info-bg:#eaf2fb;--focus:#ffbf47}
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;font-size:100%;line-height:1.5;
color:var(--ink);background:var(--paper)}
body{margin:0}
a{color:var(--link)}
a:hover{text-decoration-thickness:2px}
:focus-visible{outline:3px solid var(--focus);outline-offset:1px;box-shadow:0 0 0 5px var(--ink)}
.skip{position:absolute;left:-9999px;top:0}
.skip:focus{left:1rem;top:.5rem;z-index:10;background:var(--focus);color:#0b0c0c;padding:.5rem 1rem}
header.top{background:var(--head);color:#fff;padding:.5rem 1rem}
header.top a{color:#fff}
.brand{font-weight:700;font-size:1.1rem}
.brand span{font-weight:400}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:.5rem 0;padding:0}
nav a{text-decoration:none;padding:.25rem 0;display:inline-block}
nav a:hover,nav a[aria-current=page]{text-decoration:underline;text-underline-offset:.3em}
.who{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;font-size:.95rem}
.who form{display:inline}
.who .button{background:transparent;color:#fff;border:1px solid #fff;padding:.15rem .6rem}
main{max-width:78rem;margin:0 auto;padding:1rem 1rem 3rem}
main:focus{outline:none}
h1{font-size:1.75rem;margin:.5rem 0 1rem}
h2{font-size:1.3rem;margin:1.75rem 0 .5rem}
h3{font-size:1.1rem;margin:1.25rem 0 .5rem}
.lead{font-size:1.1rem}
.muted,.hint{color:var(--muted)}
.hint{margin:.1rem 0 .3rem;font-size:.95rem}
footer{border-top:1px solid var(--line);padding:1rem;color:var(--muted);font-size:.9rem;text-align:center}
.field{margin:0 0 1rem}
.field label{display:block;font-weight:600}
input,select,textarea{font:inherit;color:var(--ink);background:#fff;border:2px solid #5f6b77;border-radius:3px;
padding:.35rem .5rem;max-width:100%;min-width:12rem}
textarea{width:32rem}
.field input:not([type=date]),.field textarea{width:min(28rem,100%)}
img{max-width:100%;height:auto}
.records td:first-child{white-space:nowrap}
.print-only{display:none}
.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:0 1rem;align-items:end;
background:var(--soft);padding:1rem;border-radius:4px;margin-bottom:1rem}
.filters .field input,.filters .field select{width:100%}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;align-items:center;margin:.5rem 0 1rem}
.button{font:inherit;font-weight:600;border-radius:3px;padding:.45rem 1rem;cursor:pointer;border:2px solid var(--link);
display:inline-block;text-decoration:none}
.button-primary{background:var(--link);color:#fff}
.button-secondary{background:#fff;color:var(--link)}
.button-danger{background:var(--bad);border-color:var(--bad);color:#fff}
.button[aria-busy=true]{opacity:.85;cursor:progress}
.table-wrap{overflow-x:auto;margin:.5rem 0 1rem}
table{border-collapse:collapse;width:100%;font-size:.95rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;border-bottom:1px solid var(--line)}
thead th{background:var(--soft);border-bottom:2px solid #5f6b77}
tbody tr:nth-child(even){background:#fafbfc}
td.empty{color:var(--muted);font-style:italic}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.9em;background:var(--soft);
padding:0 .2rem;border-radius:2px}
pre{padding:.6rem;white-space:pre-wrap;word-break:break-all}
dl{display:grid;grid-template-columns:minmax(10rem,max-content) 1fr;gap:.3rem 1rem;margin:.5rem 0 1rem}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
.notice{border-left:6px solid;padding:.6rem 1rem;margin:1rem 0;border-radius:2px}
.notice-ok{background:var(--ok-bg);color:var(--ok);border-color:var(--ok)}
.notice-error{background:var(--bad-bg);color:var(--bad);border-color:var(--bad)}
.notice-warn{background:var(--warn-bg);color:var(--warn);border-color:var(--warn)}
.notice-info{background:var(--info-bg);color:var(--info);border-color:var(--info)}
.notice p{margin:.25rem 0}
.badge{display:inline-block;padding:0 .45rem;border-radius:3px;font-size:.85rem;font-weight:600;color:#fff;
background:var(--muted)}
.badge-ok{background:var(--ok)}
.badge-bad{background:var(--bad)}
.badge-warn{background:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}
.card{border:1px solid var(--line);border-radius:4px;padding:0 1rem .5rem}
figure{margin:1rem 0 2rem}
figcaption{font-weight:600;margin-bottom:.25rem}
svg.chart{max-width:100%;height:auto;background:#fff}
svg.chart text{fill:var(--ink);font-size:12px;font-family:inherit}
svg.chart .bar{fill:#2e6da4}
svg.chart .bar-bad{fill:var(--bad)}
svg.chart .axis{stroke:#5f6b77}
details{margin:.5rem 0}
summary{cursor:pointer;color:var(--link)}
.pager{display:flex;gap:1rem;margin:1rem 0}
.js-only{display:none}
.js .js-only{display:inline-block}
.report-id{font-size:1.1rem}
@media print{
.print-only{display:block}
header.top nav,.who,.noprint,.skip,.pager,footer form{display:none!important}
header.top{background:none;color:#000;border-bottom:2px solid #000}
header.top a{color:#000}
body{font-size:11pt}
main{max-width:none;padding:0}
a{color:#000;text-decoration:none}
.notice{border:1px solid #000;background:none;color:#000}
tbody tr:nth-child(even){background:none}
thead th{background:none}
}
"""

JS = """\
// Kiungo console: small enhancements only; every page works without this file.
document.documentElement.classList.add("js");
document.addEventListener("click", function (event) {
  var target = event.target.closest("[data-print]");
  if (target) { event.preventDefault(); window.print(); }
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) { event.preventDefault(); return; }
  var busy = form.querySelector("button[data-busy]");
  if (busy) { busy.setAttribute("aria-busy", "true"); busy.textContent = busy.getAttribute("data-busy"); }
});
"""

ASSETS: dict[str, tuple[bytes, str]] = {
    "console.css": (CSS.encode(), "text/css; charset=utf-8"),
    "console.js": (JS.encode(), "text/javascript; charset=utf-8"),
}

#: A version for the assets' URLs, so a browser keeps them until the console changes.
VERSION = hashlib.sha256(CSS.encode() + JS.encode()).hexdigest()[:12]
