// One generic node for every operation: title with the run state, typed input ports on the
// left, output ports on the right, a short summary of the parameters set, and the problems
// Python found (validation, refused connections). Nothing here is specific to an operation.
import React, { memo } from "react";
import { Handle, Position } from "@xyflow/react";

const HANDLE_STYLE = { position: "absolute", top: "50%" };

function portErrors(errors, kind, name) {
  return errors.filter((e) => e.where === `${kind}.${name}`);
}

function InputPort({ port, errors }) {
  const bad = portErrors(errors, "inputs", port.name).length > 0;
  return (
    <span className={"tl-port tl-in" + (bad ? " tl-bad" : "")} data-port={port.name}
          title={port.description || ""}>
      <Handle type="target" position={Position.Left} id={port.name} style={{ ...HANDLE_STYLE, left: -5 }} />
      {port.name}{port.required ? "" : "?"}<small>{port.type}</small>
      {!port.connected && port.literal != null &&
        <span className="tl-literal" title={String(port.literal)}>= {String(port.literal)}</span>}
    </span>
  );
}

function OutputPort({ port }) {
  return (
    <span className="tl-port tl-out" data-port={port.name} title={port.description || ""}>
      <small>{port.type}</small>{port.name}
      <Handle type="source" position={Position.Right} id={port.name} style={{ ...HANDLE_STYLE, right: -5 }} />
    </span>
  );
}

function OpNodeView({ id, data, selected }) {
  const inputs = data.inputs || [];
  const outputs = data.outputs || [];
  const errors = data.errors || [];
  const state = data.state || "";
  const rows = Math.max(inputs.length, outputs.length);
  const cls = ["tl-node", selected ? "selected" : "", state ? "tl-state-" + state : "",
               errors.length ? "tl-has-errors" : ""].join(" ");
  return (
    <div className={cls} data-testid={"node-" + id} data-state={state} data-errors={errors.length}>
      <div className="tl-title">
        <span><b>{data.label}</b> <span className="tl-op">{data.op}</span></span>
        {state && <span className="tl-badge">{state}</span>}
      </div>
      {Array.from({ length: rows }).map((_, i) => (
        <div className="tl-row" key={i}>
          {inputs[i] ? <InputPort port={inputs[i]} errors={errors} /> : <span />}
          {outputs[i] ? <OutputPort port={outputs[i]} /> : <span />}
        </div>
      ))}
      {(data.summary || []).length > 0 &&
        <div className="tl-summary">{data.summary.map((s) => <div key={s}>{s}</div>)}</div>}
      {data.detail && <div className="tl-detail" title={data.detail}>{data.detail}</div>}
      {errors.length > 0 &&
        <div className="tl-errors">{errors.map((e, i) => (
          <div key={i}>{e.where ? e.where + ": " : ""}{e.message}</div>))}</div>}
    </div>
  );
}

export const OpNode = memo(OpNodeView);
