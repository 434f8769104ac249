// `NODE_OPTIONS=--import ./acp-build-fault.mjs`: a test seam in the gateway process, not a production switch.
// Installs acp-build-fault-hooks.mjs, which makes the ACP layer's runtime-table build throw for an agent whose
// id starts with `fault-`: no valid config file can make it throw, and a reload must stay whole if it ever does.
import { register } from 'node:module';

register('./acp-build-fault-hooks.mjs', import.meta.url);
