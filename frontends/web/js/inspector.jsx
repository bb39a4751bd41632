// The parameter form of the selected node, generated from its operation's parameter schema
// (type, choices, minimum/maximum, default, description). Inputs are uncontrolled and keyed
// by the value Python holds, so a value Python accepted re-mounts them and one it refused
// stays as typed, next to its error. Every commit is one plain object: onEdit({node, kind,
// key, value} | {..., reset: true} | {..., raw, json: true}).
import React from "react";

const show = (v) => (v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

function commitOnEnter(e) {
  if (e.key === "Enter" && e.currentTarget.tagName !== "TEXTAREA") e.currentTarget.blur();
}

function Widget({ name, spec, value, explicit, send }) {
  const common = { name, key: name + ":" + show(value), "data-param": name };
  if (spec.choices && spec.choices.length) {
    const idx = spec.choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(value));
    return (
      <select {...common} defaultValue={String(idx)}
              onChange={(e) => send({ value: spec.choices[Number(e.currentTarget.value)] })}>
        {idx < 0 && <option value="-1">{show(value)}</option>}
        {spec.choices.map((c, i) => <option key={i} value={String(i)}>{show(c)}</option>)}
      </select>
    );
  }
  if (spec.type === "boolean") {
    return <input {...common} type="checkbox" defaultChecked={!!value}
                  onChange={(e) => send({ value: e.currentTarget.checked })} />;
  }
  const blur = (e) => {
    const raw = e.currentTarget.value;
    if (raw === show(value)) return;
    if (raw === "" && explicit) send({ reset: true });
    else if (spec.type === "integer" || spec.type === "number") send({ value: raw === "" ? null : Number(raw) });
    else if (spec.type === "list" || spec.type === "object") send({ raw, json: true });
    else send({ value: raw });
  };
  if (spec.type === "list" || spec.type === "object") {
    return <textarea {...common} defaultValue={show(value)} onBlur={blur} />;
  }
  const numeric = spec.type === "integer" || spec.type === "number";
  return (
    <input {...common} type={numeric ? "number" : "text"} defaultValue={show(value)}
           min={spec.minimum ?? undefined} max={spec.maximum ?? undefined}
           step={spec.type === "integer" ? 1 : "any"} onBlur={blur} onKeyDown={commitOnEnter} />
  );
}

function Field({ node, name, spec, onEdit }) {
  const params = node.params || {};
  const explicit = Object.prototype.hasOwnProperty.call(params, name);
  const value = explicit ? params[name] : spec.default;
  const errors = (node.errors || []).filter((e) => e.where === "params." + name || e.where.startsWith("params." + name + "["));
  const send = (x) => onEdit({ node: node.id, kind: "param", key: name, ...x });
  const range = [spec.minimum != null ? "≥ " + spec.minimum : "", spec.maximum != null ? "≤ " + spec.maximum : ""]
    .filter(Boolean).join(", ");
  return (
    <label className={"tl-field" + (errors.length ? " tl-bad" : "")} data-field={name}>
      <span className="tl-name">
        <span>{name} <span className="tl-default">{spec.type}{range ? " " + range : ""}
          {spec.default !== undefined ? " · default " + show(spec.default) : " · required"}</span></span>
        {explicit && <button type="button" title="Back to the default" onClick={() => send({ reset: true })}>reset</button>}
      </span>
      <Widget name={name} spec={spec} value={value} explicit={explicit} send={send} />
      <span className="tl-help">{spec.description}</span>
      {errors.map((e, i) => <span key={i} className="tl-error">{e.message}</span>)}
    </label>
  );
}

function LiteralInput({ node, port, onEdit }) {
  const value = port.literal == null ? "" : String(port.literal);
  const errors = (node.errors || []).filter((e) => e.where === "inputs." + port.name);
  return (
    <label className={"tl-field" + (errors.length ? " tl-bad" : "")} data-input={port.name}>
      <span className="tl-name"><span>{port.name} <span className="tl-default">{port.type} input
        {port.required ? "" : " · optional"}</span></span></span>
      <input type="text" name={"input-" + port.name} key={port.name + ":" + value} defaultValue={value}
             placeholder="value, or connect a node" onKeyDown={commitOnEnter}
             onBlur={(e) => {
               const raw = e.currentTarget.value;
               if (raw !== value) onEdit({ node: node.id, kind: "input", key: port.name, value: raw });
             }} />
      <span className="tl-help">{port.description}</span>
      {errors.map((e, i) => <span key={i} className="tl-error">{e.message}</span>)}
    </label>
  );
}

export function Inspector({ node, operation, onEdit }) {
  if (!node) return <div className="tl-inspector"><p className="tl-empty">Select a node to edit its parameters.</p></div>;
  const params = (operation && operation.params) || {};
  const literals = (node.inputs || []).filter((p) => !p.connected && p.literalEditable);
  return (
    <div className="tl-inspector" data-inspector={node.id}>
      <h4>{node.label}</h4>
      <p className="tl-desc">{node.op}{operation ? " — " + operation.description : " (unknown operation)"}</p>
      {literals.map((p) => <LiteralInput key={"in:" + p.name} node={node} port={p} onEdit={onEdit} />)}
      {Object.entries(params).map(([name, spec]) => (
        <Field key={name} node={node} name={name} spec={spec} onEdit={onEdit} />))}
      {Object.keys(params).length === 0 && literals.length === 0 && <p className="tl-empty">No parameters.</p>}
    </div>
  );
}
