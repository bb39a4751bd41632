"""The UI's stylesheet, served inline in the page head (no external CSS)."""

CSS = """
:root { color-scheme: dark; --bg: #181b22; --panel: #1f232c; --line: #2e3340; --text: #dde1ea;
        --muted: #8b93a7; --accent: #4fc3f7; --ok: #66bb6a; --bad: #ef5350; --warn: #ffb74d; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, sans-serif; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.mono, code, pre, .json { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
nav.top { display: flex; gap: 14px; align-items: center; padding: 8px 16px; background: #12151b;
          border-bottom: 1px solid var(--line); flex-wrap: wrap; }
nav.top .brand { font-weight: 700; margin-right: 10px; }
nav.top a.active { color: var(--text); font-weight: 600; }
nav.top .head { margin-left: auto; color: var(--muted); font-size: 12px; }
main { padding: 14px 18px 40px; }
h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 18px 0 8px; }
section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
                margin: 10px 0; }
table.grid { border-collapse: collapse; width: 100%; }
table.grid th, table.grid td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
                               vertical-align: top; }
table.grid th { color: var(--muted); font-weight: 500; }
.state { padding: 1px 7px; border-radius: 9px; font-size: 12px; background: #2b303b; }
.state-running, .state-queued, .state-pending { background: #1e3a5f; }
.state-succeeded, .state-completed, .state-cached, .state-loaded { background: #1f4a2a; }
.state-failed, .state-removed { background: #5a1f1f; }
.state-cancelled, .state-skipped, .state-interrupted { background: #4a3d1f; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; } figure.chart figcaption { font-size: 12px; color: var(--muted); }
figure.chart figcaption b { color: var(--text); }
.notice { padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.notice-error { background: #3a1d1d; border: 1px solid var(--bad); }
.notice-ok { background: #1d3a24; border: 1px solid var(--ok); }
.notice .hint { color: var(--muted); }
.row { display: flex; gap: 10px; flex-wrap: wrap; align-items: flex-end; }
label.field { display: flex; flex-direction: column; gap: 2px; margin: 4px 0; }
label.field .label { color: var(--muted); font-size: 12px; }
label.field small { color: var(--muted); font-size: 11px; max-width: 520px; }
input, select, textarea, button { background: #12151b; color: var(--text); border: 1px solid var(--line);
                                  border-radius: 4px; padding: 4px 8px; font: inherit; }
textarea { width: 100%; min-height: 70px; }
button { cursor: pointer; background: #263041; } button:hover { border-color: var(--accent); }
button.danger { border-color: #7a2c2c; } button:disabled { opacity: .5; cursor: default; }
.answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 10px; }
.answer { background: #12151b; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.answer h3 { margin: 0 0 6px; font-size: 13px; color: var(--muted); }
.answer pre { white-space: pre-wrap; margin: 0; }
.answer.generating { border-color: var(--accent); } .answer.waiting { opacity: .6; }
pre.json { background: #12151b; padding: 8px; border-radius: 4px; overflow: auto; max-height: 420px; }
ul.tree { list-style: none; padding-left: 18px; margin: 2px 0; } ul.tree li { margin: 2px 0; }
.focus { outline: 1px solid var(--accent); border-radius: 3px; padding: 0 3px; }
.muted { color: var(--muted); } .error-text { color: var(--bad); white-space: pre-wrap; }
.events td { font-size: 12px; }
.record { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin: 6px 0; }
.turn { white-space: pre-wrap; margin: 2px 0; padding: 2px 4px; border-radius: 3px; }
.turn.trained { background: #1f3a2a; border-left: 3px solid #4caf78; }
.rendered pre { white-space: pre-wrap; margin: 4px 0; } .tok.trained { background: #1f3a2a; color: #9fe0b5; }
.tok.cut { text-decoration: line-through; opacity: .5; }
.plugin-nav { display: contents; } .field-problem { color: var(--bad); font-size: 12px; }
.params-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 6px 14px; }
"""
