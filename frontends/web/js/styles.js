// The editor's own CSS (react-flow's stylesheet is injected next to it). Everything is
// scoped under .tl-editor so the host page's styles and ours do not meet.
export const EDITOR_CSS = `
.tl-editor{display:flex;gap:0;width:100%;font:12px system-ui,sans-serif;color:#e6e6e6;background:#161a22}
.tl-editor .tl-canvas{flex:1;min-width:0;position:relative}
.tl-node{background:#1f2430;border:1px solid #4a5163;border-radius:6px;min-width:200px;max-width:280px;padding-bottom:4px}
.tl-node.selected{border-color:#f0b429;box-shadow:0 0 0 1px #f0b429}
.tl-node.tl-has-errors{border-color:#e5484d}
.tl-title{display:flex;justify-content:space-between;align-items:center;gap:6px;background:#3b4252;padding:4px 8px;border-radius:6px 6px 0 0}
.tl-title b{font-size:12px}.tl-title .tl-op{color:#a9b4c6;font-size:10px}
.tl-badge{font-size:10px;padding:1px 6px;border-radius:8px;background:#4a5163;color:#fff;white-space:nowrap}
.tl-state-pending .tl-badge{background:#4a5163}
.tl-state-queued .tl-badge{background:#2f6fb3}
.tl-state-running .tl-badge{background:#0b84f3;animation:tl-pulse 1s infinite}
.tl-state-completed .tl-badge{background:#2f9e44}
.tl-state-cached .tl-badge{background:#7048e8}
.tl-state-failed .tl-badge{background:#e5484d}
.tl-state-skipped .tl-badge{background:#868e96}
.tl-node.tl-state-running{border-color:#0b84f3}
.tl-node.tl-state-completed{border-color:#2f9e44}
.tl-node.tl-state-cached{border-style:dashed;border-color:#7048e8}
.tl-node.tl-state-failed{border-color:#e5484d}
@keyframes tl-pulse{50%{opacity:.55}}
.tl-row{display:flex;justify-content:space-between;min-height:18px;align-items:center}
.tl-port{display:flex;align-items:center;gap:4px;position:relative;padding:1px 8px}
.tl-port small{color:#8fa1b3}
.tl-port.tl-bad{color:#ff8787}
.tl-port .react-flow__handle{width:9px;height:9px;background:#8fa1b3}
.tl-port.tl-bad .react-flow__handle{background:#e5484d}
.tl-port .tl-literal{color:#c5d0de;max-width:90px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-summary{padding:2px 8px;color:#c5d0de;font-size:11px}
.tl-summary div{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-errors{margin:4px 6px 0;padding:3px 6px;background:#3b1f22;border-radius:4px;color:#ffb3b3;font-size:11px}
.tl-detail{margin:2px 8px 0;color:#ffb3b3;font-size:10px;max-height:40px;overflow:hidden}
.tl-inspector{width:300px;flex:none;overflow:auto;border-left:1px solid #333a48;background:#1b1f29;padding:8px 10px}
.tl-inspector h4{margin:0 0 2px;font-size:13px}
.tl-inspector .tl-desc{color:#a9b4c6;margin:0 0 8px;font-size:11px}
.tl-field{display:block;margin:0 0 8px}
.tl-field .tl-name{display:flex;justify-content:space-between;align-items:center;font-weight:600}
.tl-field .tl-help{display:block;color:#8fa1b3;font-size:10px;margin-top:1px}
.tl-field input[type=text],.tl-field input[type=number],.tl-field select,.tl-field textarea{box-sizing:border-box;width:100%;margin-top:2px;background:#10131a;color:#eee;border:1px solid #4a5163;border-radius:3px;font:12px system-ui,sans-serif;padding:3px 4px}
.tl-field textarea{font-family:ui-monospace,monospace;min-height:44px}
.tl-field.tl-bad input,.tl-field.tl-bad select,.tl-field.tl-bad textarea{border-color:#e5484d}
.tl-field .tl-error{display:block;color:#ff8787;font-size:11px}
.tl-field .tl-default{color:#8fa1b3;font-weight:400;font-size:10px}
.tl-field button{background:none;border:none;color:#8fa1b3;cursor:pointer;font-size:11px}
.tl-empty{color:#8fa1b3}
`;
