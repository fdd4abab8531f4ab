// JSON schema of the labelwall configuration file (one file for every role).
// Structural rules live here; checks a schema cannot express well (CIDR syntax, port ranges,
// regex/glob syntax, references between keys, mark bits) live in config.ts as semantic checks.
// `errorHint` is an annotation keyword of our own: the text config.ts prints instead of
// ajv's generic message for that node.

const portSpec = {
  type: ['string', 'integer'],
  errorHint: 'must be a port (1-65535) or a range "LOW-HIGH"',
} as const;

const portList = { type: 'array', items: portSpec } as const;
const cidrList = { type: 'array', items: { type: 'string', errorHint: 'must be a CIDR string such as "10.0.0.0/8"' } } as const;
// What iptables and the kernel agree on: at most 15 characters (IFNAMSIZ 16 with the NUL), and a
// trailing "+" is iptables' wildcard (every name with that prefix; verifier/decide.ts matches the
// same way). Characters are limited to the ones real interface names use, so that a name means
// the same to iptables(-restore), to the kernel and to the handler.
const ifaceName = {
  type: 'string',
  pattern: '^(?!\\.\\.?$)[A-Za-z0-9_.-]{0,14}[A-Za-z0-9_.+-]$',
  errorHint: 'must be an interface name: 1-15 characters of A-Z a-z 0-9 _ . - (a trailing "+" matches every name that starts with the rest, as in iptables)',
} as const;
const ifaceList = { type: 'array', items: ifaceName, uniqueItems: true } as const;
const failMode = { enum: ['closed', 'open'] } as const;
const queueCount = { type: 'integer', minimum: 1, maximum: 64 } as const;
const families = { type: 'array', items: { enum: ['ipv4', 'ipv6'] }, minItems: 1, uniqueItems: true } as const;
const queueNum = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const markValue = {
  type: ['integer', 'string'],
  errorHint: 'must be an integer or a hex string such as "0x100"',
} as const;
const keyName = {
  type: 'string',
  pattern: '^[A-Za-z0-9_.-]{1,64}$',
  errorHint: 'must be a key name (letters, digits, "_", ".", "-")',
} as const;

const appMatcher = {
  type: 'object',
  additionalProperties: false,
  properties: {
    exe: { type: 'string', minLength: 1 },
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', errorHint: 'must be a SHA-256 digest: exactly 64 hex digits' },
    user: { type: ['string', 'integer'], errorHint: 'must be a user name or a numeric uid' },
    cgroup: { type: 'string', minLength: 1 },
    cmdline: { type: 'string', minLength: 1 },
    holders: { enum: ['any', 'all'] },
  },
} as const;

const dstMatcher = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cidr: cidrList,
    ports: portList,
    proto: { enum: ['tcp', 'udp', 'icmp', 'any'] },
  },
} as const;

const egressRule = {
  type: 'object',
  additionalProperties: false,
  required: ['action'],
  properties: {
    name: { type: 'string', minLength: 1 },
    app: appMatcher,
    dst: dstMatcher,
    action: { enum: ['allow', 'deny', 'log'] },
  },
} as const;

const verifierRule = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1 },
    in_interfaces: ifaceList,
    out_interfaces: ifaceList,
    sources: cidrList,
    destinations: cidrList,
    ports: portList,
    keys: { type: 'array', items: keyName, minItems: 1, uniqueItems: true },
    action: { enum: ['drop', 'mark', 'log'] },
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keys: {
      type: 'object',
      propertyNames: keyName,
      additionalProperties: { type: 'string', minLength: 1, errorHint: 'must be the path of a key file' },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['trace', 'debug', 'info', 'warn', 'error'] },
        file: { type: 'string', minLength: 1 },
        egress_decisions: {
          type: 'object',
          additionalProperties: false,
          properties: {
            allow_per_second: { type: 'integer', minimum: 0, maximum: 100000 },
            deny_per_second: { type: 'integer', minimum: 0, maximum: 100000 },
            summary_seconds: { type: 'integer', minimum: 1, maximum: 3600 },
          },
        },
      },
    },
    agent: {
      type: 'object',
      additionalProperties: false,
      properties: {
        key: keyName,
        interfaces: ifaceList,
        families,
        label: {
          type: 'object',
          additionalProperties: false,
          properties: { destinations: cidrList, ports: portList },
        },
        fail: failMode,
        queues: queueCount,
        queue_base: queueNum,
        mark: {
          type: 'object',
          additionalProperties: false,
          properties: { done: markValue, deny: markValue, allow: markValue },
        },
        identity: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ebpf: { enum: ['auto', 'on', 'off'] },
            exhaustive: { type: 'boolean' },
            hash: { type: 'boolean' },
            index_interval_ms: { type: 'integer', minimum: 0, maximum: 3600000 },
          },
        },
        egress: {
          type: 'object',
          additionalProperties: false,
          properties: {
            default: { enum: ['allow', 'deny', 'log'] },
            unknown: { enum: ['allow', 'deny', 'log'] },
            rules: { type: 'array', items: egressRule },
          },
        },
      },
    },
    verifier: {
      type: 'object',
      additionalProperties: false,
      properties: {
        hook: { enum: ['input', 'forward'] },
        action: { enum: ['drop', 'mark', 'log'] },
        families,
        fail: failMode,
        queues: queueCount,
        queue_base: queueNum,
        mark: {
          type: 'object',
          additionalProperties: false,
          properties: {
            mask: markValue,
            valid: markValue,
            invalid: markValue,
            unlabeled: markValue,
            malformed: markValue,
          },
        },
        rules: { type: 'array', items: verifierRule },
      },
    },
    control: {
      type: 'object',
      additionalProperties: false,
      properties: { socket: { type: 'string', minLength: 1 } },
    },
  },
} as const;
