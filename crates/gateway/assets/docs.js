// The interactive docs: reads the OpenAPI document and renders every operation with a
// form to try it. Plain DOM, no library, so it works offline. Text from the document is
// always inserted as text, never as HTML.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
let documentRoot = null;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function resolve(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    const name = schema.$ref.split("/").pop();
    schema = documentRoot.components?.schemas?.[name];
  }
  return schema || {};
}

// A schema with its references expanded (to a bounded depth), to show in full.
function expand(schema, depth = 0) {
  if (depth > 6) return schema;
  const resolved = resolve(schema);
  if (Array.isArray(resolved)) return resolved.map((item) => expand(item, depth + 1));
  if (typeof resolved !== "object") return resolved;
  const copy = {};
  for (const [key, value] of Object.entries(resolved)) {
    copy[key] = typeof value === "object" && value !== null ? expand(value, depth + 1) : value;
  }
  return copy;
}

// An example value for a schema, to start the body textarea with.
function example(schema, depth = 0) {
  schema = resolve(schema);
  if (schema.example !== undefined) return schema.example;
  if (depth > 6) return null;
  const choices = schema.oneOf || schema.anyOf;
  if (choices) return example(choices.find((choice) => choice.type !== "null") || choices[0], depth + 1);
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const value = {};
      for (const [name, property] of Object.entries(schema.properties || {})) value[name] = example(property, depth + 1);
      return value;
    }
    case "array": return [example(schema.items || {}, depth + 1)];
    case "integer": case "number": return schema.minimum ?? 0;
    case "boolean": return false;
    case "string": return schema.format === "uuid" ? "00000000-0000-0000-0000-000000000000" : "";
    default: return null;
  }
}

function parametersTable(parameters) {
  if (!parameters.length) return null;
  const rows = parameters.map((parameter) => element("tr", {},
    element("td", {}, element("code", { text: parameter.name })),
    element("td", { text: parameter.in }),
    element("td", { text: parameter.required ? "yes" : "no" }),
    element("td", { text: (resolve(parameter.schema).type || "") + (parameter.description ? " — " + parameter.description : "") })));
  return element("table", {},
    element("thead", {}, element("tr", {}, ...["name", "in", "required", "type"].map((h) => element("th", { scope: "col", text: h })))),
    element("tbody", {}, ...rows));
}

function tryItForm(method, path, operation, id) {
  const parameters = operation.parameters || [];
  const inputs = {};
  const form = element("form", { "aria-label": `Try ${method.toUpperCase()} ${path}` });
  for (const parameter of parameters) {
    const inputId = `${id}-${parameter.in}-${parameter.name}`;
    inputs[`${parameter.in}:${parameter.name}`] = element("input", { id: inputId, type: "text", autocomplete: "off" });
    form.append(element("label", { for: inputId, text: `${parameter.name} (${parameter.in}${parameter.required ? ", required" : ""})` }),
      inputs[`${parameter.in}:${parameter.name}`]);
  }
  const content = operation.requestBody?.content || {};
  const contentType = Object.keys(content)[0];
  let body = null;
  if (contentType) {
    const bodyId = `${id}-body`;
    const start = contentType === "application/x-www-form-urlencoded"
      ? "grant_type=password&username=&password="
      : JSON.stringify(example(content[contentType].schema), null, 2);
    body = element("textarea", { id: bodyId, spellcheck: "false" });
    body.value = start;
    form.append(element("label", { for: bodyId, text: `Body (${contentType})` }), body);
  }
  const status = element("p", { class: "status", role: "status" });
  const output = element("pre", { "aria-label": "Response body" });
  form.append(element("button", { type: "submit", text: "Send" }), status, output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const parameter of parameters) {
      const value = inputs[`${parameter.in}:${parameter.name}`].value;
      if (value === "") continue;
      if (parameter.in === "path") url = url.replace(`{${parameter.name}}`, encodeURIComponent(value));
      else if (parameter.in === "query") query.append(parameter.name, value);
      else if (parameter.in === "header") headers[parameter.name] = value;
    }
    if ([...query].length) url += "?" + query;
    const token = document.getElementById("token").value.trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) headers["Content-Type"] = contentType;
    status.textContent = "Sending…";
    output.textContent = "";
    try {
      const response = await fetch(url, { method: method.toUpperCase(), headers, body: body ? body.value : undefined });
      const text = await response.text();
      status.textContent = `${response.status} ${response.statusText}`;
      try {
        const json = JSON.parse(text);
        output.textContent = JSON.stringify(json, null, 2);
        if (path === "/oauth/token" && json.access_token) document.getElementById("token").value = json.access_token;
      } catch {
        output.textContent = text;
      }
    } catch (error) {
      status.textContent = `The request failed: ${error}`;
    }
  });
  return form;
}

function renderOperation(method, path, operation, index) {
  const id = `operation-${index}`;
  const secured = (operation.security || []).length > 0;
  const section = element("div", { class: "operation" });
  if (operation.description || operation.summary) section.append(element("p", { text: operation.description || operation.summary }));
  const table = parametersTable(operation.parameters || []);
  if (table) section.append(element("h4", { text: "Parameters" }), table);
  const content = operation.requestBody?.content || {};
  for (const [type, media] of Object.entries(content)) {
    section.append(element("h4", { text: `Request body (${type})` }),
      element("pre", { text: JSON.stringify(expand(media.schema), null, 2) }));
  }
  const responses = Object.entries(operation.responses || {}).map(([code, response]) => element("tr", {},
    element("td", { text: code }), element("td", { text: response.description || "" })));
  section.append(element("h4", { text: "Responses" }),
    element("table", {}, element("tbody", {}, ...responses)),
    element("h4", { text: "Try it" }), tryItForm(method, path, operation, id));
  return element("details", { id },
    element("summary", {},
      element("span", { class: `method ${method}`, text: method }),
      element("span", { class: "path", text: path }),
      secured ? element("span", { class: "lock", text: "needs a token" }) : null),
    section);
}

async function main() {
  const summary = document.getElementById("summary");
  try {
    const response = await fetch("/api/openapi.json");
    documentRoot = await response.json();
  } catch (error) {
    summary.textContent = `Cannot load /api/openapi.json: ${error}`;
    return;
  }
  summary.textContent = documentRoot.info?.description || "";
  const groups = new Map();
  let index = 0;
  for (const [path, item] of Object.entries(documentRoot.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(renderOperation(method, path, operation, index++));
    }
  }
  const main = document.getElementById("operations");
  for (const [tag, operations] of groups) main.append(element("section", {}, element("h2", { text: tag }), ...operations));
}

document.addEventListener("DOMContentLoaded", main);
