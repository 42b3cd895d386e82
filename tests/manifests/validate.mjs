#!/usr/bin/env node
// Validates the Kubernetes and Argo Workflows manifests of mlctl against real schemas.
//
//   node tests/manifests/validate.mjs [FILE|DIR ...]    (default: manifests/k8s manifests/argo)
//
// Every YAML document of every *.yaml/*.yml file is checked, and one line is printed per
// document (`ok` or `FAIL` with the reasons); the exit code is 0 when all are valid, 1 when
// any is not, 2 on a usage error (nothing to validate).
//
// The checks, in order:
//  1. YAML: syntax, duplicate keys, and no scalar that YAML 1.1 (what Kubernetes' parser
//     follows) and YAML 1.2 read differently (`on`, `0440`, `1:20`): quote those.
//  2. The schema of the document's apiVersion/kind, from the npm packages `kubernetes-models`
//     (the Kubernetes OpenAPI schemas) and `@kubernetes-models/argo-workflows` (Argo's CRD
//     schemas). A kind not in MODELS below is an error.
//  3. Unknown fields, as `kubectl apply --validate=strict` refuses them: the schemas allow
//     extra properties, so the validator runs a second time on a copy of the document that
//     records which properties the schema looked at; a property of an object whose schema
//     names its properties, that the schema never looked at, is unknown (a typo).
//  4. The project's rules: namespace-agnostic (no metadata.namespace), a name or generateName.
//  5. Argo references, as `argo lint` checks them: the entrypoint, onExit and every task's or
//     step's template exist, `depends` names existing tasks, every input without a default is
//     supplied, and every {{workflow.parameters.X}}, {{inputs.parameters.X}},
//     {{tasks.T.outputs.parameters.P}} and {{steps.S.outputs.parameters.P}} resolves.

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import {
  ConfigMap,
  Namespace,
  PersistentVolumeClaim,
  Secret,
  Service,
  ServiceAccount,
} from "kubernetes-models/v1";
import {
  CronWorkflow,
  Workflow,
  WorkflowTemplate,
} from "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1";

// apiVersion/kind -> model class. Add a kind here when a manifest needs it.
const MODELS = new Map(
  [
    ConfigMap,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    Service,
    ServiceAccount,
    Deployment,
    HorizontalPodAutoscaler,
    Role,
    RoleBinding,
    Workflow,
    CronWorkflow,
    WorkflowTemplate,
  ].map((model) => [`${model.apiVersion}/${model.kind}`, model]),
);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEFAULT_INPUTS = ["manifests/k8s", "manifests/argo"].map((p) => path.join(ROOT, p));

// ---- 1. YAML ------------------------------------------------------------------------------

function yamlErrors(docs) {
  const errors = [];
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) errors.push(e.message.split("\n")[0].replace(/:$/, ""));
  }
  return errors;
}

// Paths where two plain JS values differ, e.g. ["spec.ports[0].port: ..."].
function differences(a, b, where, out) {
  if (typeof a !== typeof b || Array.isArray(a) !== Array.isArray(b) || (a === null) !== (b === null)) {
    out.push(`${where || "(document)"}: YAML 1.1 reads ${JSON.stringify(a)}, YAML 1.2 reads ${JSON.stringify(b)}; quote it`);
  } else if (Array.isArray(a)) {
    if (a.length !== b.length) out.push(`${where}: different lengths under YAML 1.1 and 1.2`);
    else a.forEach((v, i) => differences(v, b[i], `${where}[${i}]`, out));
  } else if (a && typeof a === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) differences(a[k], b[k], where ? `${where}.${k}` : k, out);
  } else if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) {
    out.push(`${where}: YAML 1.1 reads ${JSON.stringify(a)}, YAML 1.2 reads ${JSON.stringify(b)}; quote it`);
  }
  return out;
}

// ---- 3. unknown fields --------------------------------------------------------------------

// Returns a deep copy of `value` whose objects record the property names read from them.
function tracked(value, where, records) {
  if (Array.isArray(value)) return value.map((v, i) => tracked(v, `${where}[${i}]`, records));
  if (value === null || typeof value !== "object") return value;
  const copy = {};
  for (const [k, v] of Object.entries(value)) copy[k] = tracked(v, where ? `${where}.${k}` : k, records);
  const read = new Set();
  records.push({ where, keys: Object.keys(value), read });
  return new Proxy(copy, {
    get(target, property, receiver) {
      if (typeof property === "string") read.add(property);
      return Reflect.get(target, property, receiver);
    },
  });
}

function unknownFields(model, json) {
  const records = [];
  const proxy = tracked(json, "", records);
  model.prototype.validate.call(proxy); // already valid: this only records what was read
  const unknown = [];
  for (const { where, keys, read } of records) {
    if (read.size === 0) continue; // a free-form object (no properties in its schema)
    for (const k of keys) if (!read.has(k)) unknown.push(`${where ? `${where}.` : ""}${k}: unknown field`);
  }
  return unknown;
}

// ---- 5. Argo references -------------------------------------------------------------------

const REFERENCE = /\{\{\s*([^{}]+?)\s*\}\}/g;

function strings(value, out = []) {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => strings(v, out));
  return out;
}

function names(list) {
  return new Set((list ?? []).map((p) => p.name));
}

function argoSpec(doc) {
  if (doc.kind === "CronWorkflow") return [doc.spec?.workflowSpec, "spec.workflowSpec"];
  if (["Workflow", "WorkflowTemplate"].includes(doc.kind)) return [doc.spec, "spec"];
  return [null, ""];
}

function argoErrors(doc) {
  const [spec, at] = argoSpec(doc);
  if (!spec) return [];
  const errors = [];
  const templates = new Map((spec.templates ?? []).map((t) => [t.name, t]));
  const globals = names(spec.arguments?.parameters);
  for (const field of ["entrypoint", "onExit"]) {
    if (spec[field] !== undefined && !templates.has(spec[field])) {
      errors.push(`${at}.${field}: no template named ${JSON.stringify(spec[field])}`);
    }
  }
  const outputsOf = (templateName) => names(templates.get(templateName)?.outputs?.parameters);

  spec.templates?.forEach((template, ti) => {
    const here = `${at}.templates[${ti}] (${template.name})`;
    const inputs = names(template.inputs?.parameters);
    // Calls of other templates: DAG tasks, or steps (a list of parallel groups).
    const calls = [];
    (template.dag?.tasks ?? []).forEach((task, i) => calls.push({ kind: "tasks", task, where: `${here}.dag.tasks[${i}]` }));
    (template.steps ?? []).forEach((group, g) =>
      (group ?? []).forEach((task, i) => calls.push({ kind: "steps", task, where: `${here}.steps[${g}][${i}]` })),
    );
    const callees = new Map(calls.map(({ kind, task }) => [`${kind}.${task.name}`, task.template]));

    for (const { kind, task, where } of calls) {
      const callee = templates.get(task.template);
      if (!callee) {
        errors.push(`${where}.template: no template named ${JSON.stringify(task.template)}`);
        continue;
      }
      const given = names(task.arguments?.parameters);
      for (const p of callee.inputs?.parameters ?? []) {
        if (!given.has(p.name) && p.value === undefined && p.default === undefined) {
          errors.push(`${where}: input parameter ${JSON.stringify(p.name)} of ${task.template} is not supplied`);
        }
      }
      for (const name of given) {
        if (!names(callee.inputs?.parameters).has(name)) {
          errors.push(`${where}.arguments: ${task.template} has no input parameter ${JSON.stringify(name)}`);
        }
      }
      if (kind === "tasks" && task.depends !== undefined) {
        for (const word of task.depends.match(/[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?/g) ?? []) {
          const name = word.split(".")[0];
          if (!callees.has(`tasks.${name}`)) errors.push(`${where}.depends: no task named ${JSON.stringify(name)}`);
        }
      }
    }

    for (const text of strings(template)) {
      for (const [, expression] of text.matchAll(REFERENCE)) {
        const parts = expression.split(".");
        let problem = null;
        if (parts[0] === "workflow" && parts[1] === "parameters") {
          if (!globals.has(parts.slice(2).join("."))) problem = "no such workflow parameter";
        } else if (parts[0] === "inputs" && parts[1] === "parameters") {
          if (!inputs.has(parts.slice(2).join("."))) problem = "no such input parameter in this template";
        } else if ((parts[0] === "tasks" || parts[0] === "steps") && parts[2] === "outputs" && parts[3] === "parameters") {
          const callee = callees.get(`${parts[0]}.${parts[1]}`);
          if (callee === undefined) problem = `no ${parts[0] === "tasks" ? "task" : "step"} named ${parts[1]} in this template`;
          else if (!outputsOf(callee).has(parts.slice(4).join("."))) problem = `template ${callee} has no such output parameter`;
        }
        if (problem) errors.push(`${here}: {{${expression}}}: ${problem}`);
      }
    }
  });
  return errors;
}

// ---- one document -------------------------------------------------------------------------

// The Argo schema describes a `steps` template as a list of {steps: [...]} objects, a
// workaround of Argo's code generator: on the wire (and in every Argo manifest) each element
// is a plain list of parallel steps (see the comment on ParallelSteps in the package's
// typings). Rewrites a copy into the schema's form before validating.
function argoSchemaForm(doc) {
  const [spec] = argoSpec(doc);
  if (!spec?.templates?.some((t) => Array.isArray(t.steps))) return doc;
  const copy = structuredClone(doc);
  const [copySpec] = argoSpec(copy);
  for (const t of copySpec.templates) {
    if (Array.isArray(t.steps)) t.steps = t.steps.map((group) => (Array.isArray(group) ? { steps: group } : group));
  }
  return copy;
}

function check(json11, json12) {
  const errors = differences(json11, json12, "", []);
  const doc = json11;
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { label: "(not a mapping)", errors: ["a document must be a mapping with apiVersion and kind"] };
  }
  const label = `${doc.apiVersion ?? "?"} ${doc.kind ?? "?"} ${doc.metadata?.name ?? doc.metadata?.generateName ?? "?"}`;
  const model = MODELS.get(`${doc.apiVersion}/${doc.kind}`);
  if (!model) {
    return { label, errors: [...errors, `unknown apiVersion/kind ${doc.apiVersion}/${doc.kind} (known: ${[...MODELS.keys()].join(", ")})`] };
  }
  try {
    const instance = new model(argoSchemaForm(doc));
    instance.validate();
    errors.push(...unknownFields(model, instance.toJSON()));
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    // ajv's /spec/template/0/x -> spec.template[0].x, the form kubectl prints.
    for (const { instancePath, message } of e.errors) {
      const where = instancePath.split("/").slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join("").replace(/^\./, "");
      errors.push(`${where || "(document)"}: ${message}`);
    }
  }
  if (doc.metadata?.namespace !== undefined) {
    errors.push("metadata.namespace: manifests are namespace-agnostic; choose the namespace with kubectl -n");
  }
  if (!doc.metadata?.name && !doc.metadata?.generateName) errors.push("metadata: needs a name or a generateName");
  errors.push(...argoErrors(doc));
  // Back from the schema's form of `steps` (see argoSchemaForm) to the manifest's.
  const shown = errors.map((e) => e.replace(/\.steps\[(\d+)\]\.steps\[/g, ".steps[$1]["));
  return { label, errors: [...new Set(shown)] };
}

// ---- files --------------------------------------------------------------------------------

function collect(inputs) {
  const files = [];
  for (const input of inputs) {
    let stat;
    try {
      stat = statSync(input);
    } catch {
      throw new Error(`${input}: no such file or directory`);
    }
    if (stat.isDirectory()) {
      for (const name of readdirSync(input).sort()) {
        if (/\.ya?ml$/.test(name)) files.push(path.join(input, name));
      }
    } else {
      files.push(input);
    }
  }
  return files;
}

function main(argv) {
  const inputs = argv.length ? argv.map((a) => path.resolve(a)) : DEFAULT_INPUTS;
  let files;
  try {
    files = collect(inputs);
  } catch (e) {
    console.error(`validate: ${e.message}`);
    return 2;
  }
  if (files.length === 0) {
    console.error(`validate: no YAML files in ${inputs.join(", ")}`);
    return 2;
  }
  let valid = 0;
  let invalid = 0;
  for (const file of files) {
    const shown = path.relative(process.cwd(), file) || file;
    const text = readFileSync(file, "utf8");
    const docs11 = parseAllDocuments(text, { version: "1.1" });
    const docs12 = parseAllDocuments(text, { version: "1.2" });
    const syntax = [...new Set([...yamlErrors(docs11), ...yamlErrors(docs12)])];
    if (syntax.length) {
      console.log(`FAIL  ${shown}: ${syntax.join("; ")}`);
      invalid++;
      continue;
    }
    let count = 0;
    docs11.forEach((doc, i) => {
      const json11 = doc.toJS();
      if (json11 === null || json11 === undefined) return; // an empty document (a stray ---)
      count++;
      const { label, errors } = check(json11, docs12[i].toJS());
      if (errors.length) {
        console.log(`FAIL  ${shown}[${i}] ${label}`);
        for (const e of errors) console.log(`        ${e}`);
        invalid++;
      } else {
        console.log(`ok    ${shown}[${i}] ${label}`);
        valid++;
      }
    });
    if (count === 0) {
      console.log(`FAIL  ${shown}: no documents`);
      invalid++;
    }
  }
  console.log(`validate: ${valid} valid, ${invalid} invalid`);
  return invalid ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
