// The bundle's entry: ReactPy's custom-component interface `bind(node) -> {create, render,
// unmount}` over our own React 19, plus the component ReactPy exports by name. react-flow's CSS
// comes in as text (esbuild --loader:.css=text) and is injected once.
import React from "react";
import { createRoot } from "react-dom/client";
import xyflowCss from "@xyflow/react/dist/style.css";
import { EDITOR_CSS } from "./styles.js";
import { WorkflowCanvas } from "./canvas.jsx";

export { WorkflowCanvas };

function ensureCss() {
  if (document.getElementById("tunelog-editor-css")) return;
  const style = document.createElement("style");
  style.id = "tunelog-editor-css";
  style.textContent = xyflowCss + EDITOR_CSS;
  document.head.appendChild(style);
}

export function bind(node, _config) {
  ensureCss();
  // The root is created lazily and forgotten on unmount: a client may call render() again
  // after unmount() (React error #409 otherwise).
  let root = null;
  return {
    create: (type, props, children) => React.createElement(type, props, ...(children || [])),
    render: (element) => { if (!root) root = createRoot(node); root.render(element); },
    unmount: () => { if (root) { root.unmount(); root = null; } },
  };
}
