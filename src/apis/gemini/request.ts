/**
 * Gemini `generateContent` request (what Gemini CLI and raw REST callers send) → the internal chat form.
 * Pure; errors are INVALID_REQUEST / UNSUPPORTED naming the field.
 *
 * - systemInstruction parts → a leading system message; contents role `user` / `model` → user / assistant;
 * - parts: text → text (parts with `thought: true` are the model's thinking: dropped), inlineData → a data:
 *   image URL, functionCall → an assistant tool call, functionResponse → a `tool` message; fileData,
 *   executableCode, codeExecutionResult → UNSUPPORTED; thoughtSignature is ignored;
 * - call ids: Gemini's `id` when present; otherwise an id is made per call (`call_<turn>_<n>`) and each
 *   functionResponse without an id answers the oldest open call of the same name, as the API pairs them;
 * - tools[].functionDeclarations (parameters or parametersJsonSchema) → function tools; other tools
 *   (googleSearch, codeExecution, urlContext…) run only on Google's servers and are dropped;
 * - toolConfig.functionCallingConfig.mode AUTO / ANY / NONE → auto / required / none (ANY with a single
 *   allowed name → that function);
 * - generationConfig: temperature, topP, maxOutputTokens, stopSequences map 1:1; responseMimeType
 *   application/json (+ responseSchema / responseJsonSchema) → response_format; candidateCount above 1 is
 *   refused; topK, seed, thinkingConfig and the rest have no chat form and are dropped.
 * Every key is read in either spelling (`field`): the REST API takes proto JSON, camelCase or snake_case.
 */
import { GatewayError } from '../../wire/errors.js';
import { jsonKind, quotedName, type ChatMessage, type ChatRequest, type ContentPart, type ToolCall, type ToolDefinition } from '../../wire/openai.js';
import { isObj } from '../../util/is-object.js';
import { leniently, untranslatable } from '../common/untranslatable.js';
import { base64DataUrl, finiteNumber, requireTurn, tokenLimit, toolDescription, toolName, toolSchema } from '../common/fields.js';

/**
 * `o[key]`, else the same key in snake_case (`maxOutputTokens` → `max_output_tokens`): Google's REST API
 * reads proto JSON, which accepts both spellings, and raw REST callers (Python, curl) send snake_case.
 */
function field(o: Record<string, unknown>, key: string): unknown {
  const v = o[key];
  return v !== undefined ? v : o[key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())];
}

function bad(param: string, what: string): never {
  throw new GatewayError('INVALID_REQUEST', `${param}: ${what}`, { param });
}

/**
 * A `countTokens` body held to the generateContent rules: `{ contents, … }` or `{ generateContentRequest: { contents,
 * … } }` (one of the two), through the same translator, leniently: a part the chat form has no place for (fileData)
 * is still counted. Throws INVALID_REQUEST naming the client's field.
 */
export function checkCountTokens(model: string, body: unknown): void {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  const g = field(body, 'generateContentRequest');
  if (g === undefined || g === null) return void leniently({}, () => geminiToChat(model, body, false));
  if (body.contents !== undefined) bad('contents', 'give contents or generateContentRequest, not both');
  if (!isObj(g)) bad('generateContentRequest', 'must be an object');
  try {
    leniently({}, () => geminiToChat(model, g, false));
  } catch (e) {
    // the same check, one level down: name the field as the client wrote it
    const p = e instanceof GatewayError && e.param ? `generateContentRequest.${e.param}` : undefined;
    throw p ? new GatewayError((e as GatewayError).code, `generateContentRequest.${(e as GatewayError).message}`, { param: p }) : e;
  }
}

export function geminiToChat(model: string, body: unknown, stream: boolean): ChatRequest {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  if (!Array.isArray(body.contents) || body.contents.length === 0) bad('contents', 'required, a non-empty array');
  const messages: ChatMessage[] = [];
  const si = field(body, 'systemInstruction');
  if (typeof si === 'string') {
    if (si) messages.push({ role: 'system', content: si });
  } else if (si !== undefined) {
    if (!isObj(si) || !Array.isArray(si.parts)) bad('systemInstruction', 'must be { parts: [{ text }] } or a string');
    // a part that is not text (inlineData, a bare string) has no place in a system message: refused, not dropped
    const text = si.parts
      .map((p: unknown, i: number) => (isObj(p) && typeof p.text === 'string' ? p.text : bad(`systemInstruction.parts[${i}]`, 'must be a text part { text }')))
      .join('\n');
    if (text) messages.push({ role: 'system', content: text });
  }
  const open = new Map<string, string[]>(); // function name → ids of calls not answered yet
  body.contents.forEach((c: unknown, i: number) => content(c, i, messages, open));
  requireTurn(messages, 'contents');

  const out: ChatRequest = { model, messages };
  if (stream) out.stream = true;
  tools(body.tools, out);
  toolConfig(field(body, 'toolConfig'), out);
  generationConfig(field(body, 'generationConfig'), out);
  return out;
}

function content(c: unknown, i: number, out: ChatMessage[], open: Map<string, string[]>): void {
  const at = `contents[${i}]`;
  if (!isObj(c) || !Array.isArray(c.parts)) bad(at, 'must be { role, parts: [...] }');
  const role = c.role ?? 'user';
  if (role !== 'user' && role !== 'model' && role !== 'function') bad(`${at}.role`, 'must be "user" or "model"');
  const parts: ContentPart[] = [];
  const calls: ToolCall[] = [];
  c.parts.forEach((p: unknown, j: number) => {
    const q = `${at}.parts[${j}]`;
    if (!isObj(p)) bad(q, 'must be an object');
    if (p.text !== undefined && typeof p.text !== 'string') bad(`${q}.text`, 'must be a string');
    if (typeof p.text === 'string') {
      if (p.thought !== true && p.text) parts.push({ type: 'text', text: p.text });
    } else if (isObj(field(p, 'inlineData'))) {
      const d = field(p, 'inlineData') as Record<string, unknown>;
      // proto JSON bytes: standard or URL-safe base64
      const url = base64DataUrl(field(d, 'mimeType'), d.data, { mediaType: `${q}.inlineData.mimeType`, data: `${q}.inlineData.data` }, true);
      // the chat form's only inline media is an image: a PDF or audio as an image part is refused upstream under a
      // field the client never sent, or read as a broken image
      if (!/^data:image\//i.test(url))
        untranslatable(
          `${q}.inlineData.mimeType`,
          `${q}.inlineData.mimeType: inline data of type "${quotedName(String(field(d, 'mimeType')))}" cannot be translated (images only)`,
        );
      else parts.push({ type: 'image_url', image_url: { url } });
    } else if (isObj(field(p, 'functionCall'))) {
      const f = field(p, 'functionCall') as Record<string, unknown>;
      // a non-empty string: an empty name names no function, and an upstream refuses the call under a field the client never sent
      const name = toolName(f.name, `${q}.functionCall.name`);
      // a Struct: anything else (a string, an array) became arguments no tool could take
      if (f.args !== undefined && f.args !== null && !isObj(f.args)) bad(`${q}.functionCall.args`, `must be an object, not ${jsonKind(f.args)}`);
      const id = typeof f.id === 'string' && f.id ? f.id : `call_${i}_${j}`;
      const list = open.get(name) ?? [];
      list.push(id);
      open.set(name, list);
      calls.push({ id, type: 'function', function: { name, arguments: JSON.stringify(f.args ?? {}) } });
    } else if (isObj(field(p, 'functionResponse'))) {
      const f = field(p, 'functionResponse') as Record<string, unknown>;
      const name = toolName(f.name, `${q}.functionResponse.name`);
      const list = open.get(name);
      const id = typeof f.id === 'string' && f.id ? f.id : (list?.[0] ?? `call_${name}`);
      if (list) {
        const k = list.indexOf(id);
        if (k !== -1) list.splice(k, 1);
      }
      out.push({ role: 'tool', tool_call_id: id, content: JSON.stringify(f.response ?? {}) });
    } else if (field(p, 'thoughtSignature') === undefined) {
      untranslatable(q, `${q}: this part type cannot be translated for this channel`);
    }
  });
  if (role === 'model') {
    if (parts.some((p) => p.type !== 'text')) bad(`${at}.parts`, 'model turns take text and functionCall parts only');
    const text = parts.map((p) => (p as { text: string }).text).join('');
    if (text || calls.length) {
      const msg: ChatMessage = { role: 'assistant', content: text || null };
      if (calls.length) msg.tool_calls = calls;
      out.push(msg);
    }
  } else if (parts.length) {
    const textOnly = parts.every((p) => p.type === 'text');
    out.push({ role: 'user', content: textOnly ? parts.map((p) => (p as { text: string }).text).join('') : parts });
  }
}

function tools(t: unknown, out: ChatRequest): void {
  if (t === undefined) return;
  if (!Array.isArray(t)) bad('tools', 'must be an array');
  const defs: ToolDefinition[] = [];
  t.forEach((tool: unknown, i: number) => {
    if (!isObj(tool)) bad(`tools[${i}]`, 'must be an object');
    const decls = field(tool, 'functionDeclarations');
    if (decls === undefined) return; // googleSearch, codeExecution, …: Google-side tools
    if (!Array.isArray(decls)) bad(`tools[${i}].functionDeclarations`, 'must be an array');
    decls.forEach((d: unknown, j: number) => {
      const at = `tools[${i}].functionDeclarations[${j}]`;
      if (!isObj(d)) bad(at, 'needs a name');
      const name = toolName(d.name, `${at}.name`);
      const schema = toolSchema(field(d, 'parametersJsonSchema'), `${at}.parametersJsonSchema`) ?? toolSchema(d.parameters, `${at}.parameters`);
      const fn: ToolDefinition['function'] = { name, parameters: schema ? lowerTypes(schema) : { type: 'object', properties: {} } };
      const description = toolDescription(d.description, `${at}.description`);
      if (description !== undefined) fn.description = description;
      defs.push({ type: 'function', function: fn });
    });
  });
  if (defs.length) out.tools = defs;
}

/**
 * Gemini's OpenAPI-subset schemas spell types in upper case (STRING, OBJECT); JSON Schema wants lower case. Every
 * place a Schema holds schemas is followed: `properties`, `items`, and `anyOf` (a list of schemas), so a type inside
 * an `anyOf` (an optional or union parameter) is lowered too. `nullable: true` becomes a `null` type (and enum value).
 */
function lowerTypes(s: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'type' && typeof v === 'string') o[k] = v.toLowerCase();
    else if (k === 'properties' && isObj(v)) o[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, isObj(pv) ? lowerTypes(pv) : pv]));
    else if (k === 'items' && isObj(v)) o[k] = lowerTypes(v);
    else if (k === 'anyOf' && Array.isArray(v)) o[k] = v.map((x: unknown) => (isObj(x) ? lowerTypes(x) : x));
    else o[k] = v;
  }
  // OpenAPI's `nullable: true` (Gemini's Schema has it; JSON Schema has not, and an upstream ignores it): null is one
  // more value the field may take, so a model is not held to leaving an optional field out
  if (o.nullable === true) {
    delete o.nullable;
    if (typeof o.type === 'string') o.type = [o.type, 'null'];
    else if (Array.isArray(o.anyOf)) o.anyOf = [...(o.anyOf as unknown[]), { type: 'null' }];
    if (Array.isArray(o.enum) && !o.enum.includes(null)) o.enum = [...(o.enum as unknown[]), null];
  }
  return o;
}

function toolConfig(tc: unknown, out: ChatRequest): void {
  if (tc === undefined || tc === null) return;
  // a toolConfig or mode the gateway cannot read is refused, not ignored: it may have asked for a call (ANY)
  if (!isObj(tc)) bad('toolConfig', 'must be an object { functionCallingConfig }');
  const f = field(tc, 'functionCallingConfig');
  if (f === undefined || f === null) return;
  if (!isObj(f)) bad('toolConfig.functionCallingConfig', 'must be an object { mode, allowedFunctionNames }');
  if (f.mode !== undefined && !['AUTO', 'ANY', 'NONE', 'VALIDATED', 'MODE_UNSPECIFIED'].includes(f.mode as string))
    bad('toolConfig.functionCallingConfig.mode', 'must be AUTO, ANY, NONE or VALIDATED');
  if (!out.tools) return;
  const allowed = field(f, 'allowedFunctionNames');
  // each names a function: an empty one (or not a string) names none the model could call
  if (Array.isArray(allowed)) allowed.forEach((n: unknown, i: number) => toolName(n, `toolConfig.functionCallingConfig.allowedFunctionNames[${i}]`));
  if (f.mode === 'NONE') out.tool_choice = 'none';
  else if (f.mode === 'ANY')
    out.tool_choice =
      Array.isArray(allowed) && allowed.length === 1 && typeof allowed[0] === 'string' ? { type: 'function', function: { name: allowed[0] } } : 'required';
  else out.tool_choice = 'auto';
}

function generationConfig(g: unknown, out: ChatRequest): void {
  if (g === undefined) return;
  if (!isObj(g)) bad('generationConfig', 'must be an object');
  const num = (k: string) => finiteNumber(field(g, k), `generationConfig.${k}`);
  const temperature = num('temperature');
  const topP = num('topP');
  const max = tokenLimit(field(g, 'maxOutputTokens'), 'generationConfig.maxOutputTokens');
  const n = num('candidateCount');
  if (temperature !== undefined) out.temperature = temperature;
  if (topP !== undefined) out.top_p = topP;
  if (max !== undefined) out.max_tokens = max;
  if (n !== undefined && n > 1) untranslatable('generationConfig.candidateCount', 'generationConfig.candidateCount: only 1 candidate is supported');
  const stop = field(g, 'stopSequences');
  if (stop !== undefined) {
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) bad('generationConfig.stopSequences', 'must be an array of strings');
    if (stop.length) out.stop = stop;
  }
  const mime = field(g, 'responseMimeType');
  if (mime !== undefined && mime !== null && typeof mime !== 'string') bad('generationConfig.responseMimeType', 'must be a string');
  // an answer shape the chat form cannot ask for (`text/x.enum`) is refused, not dropped: the answer would be prose
  if (typeof mime === 'string' && mime !== 'application/json' && mime !== 'text/plain')
    untranslatable(
      'generationConfig.responseMimeType',
      `generationConfig.responseMimeType: "${quotedName(mime)}" cannot be translated (application/json or text/plain)`,
    );
  if (mime === 'application/json') {
    // a schema that is not an object asked for a shape this answer would not be held to (json_object instead)
    const schema =
      toolSchema(field(g, 'responseJsonSchema'), 'generationConfig.responseJsonSchema') ??
      toolSchema(field(g, 'responseSchema'), 'generationConfig.responseSchema');
    out.response_format = isObj(schema) ? { type: 'json_schema', json_schema: { name: 'response', schema: lowerTypes(schema) } } : { type: 'json_object' };
  }
}
