// The config file's one definition (TypeBox): the JSON schema that ajv validates and the
// TypeScript type of the file as written (RawConfig) both come from it, as do the enum types the
// typed model uses (model.ts). Structural rules live here; checks a schema cannot express well
// (CIDR syntax, port ranges, regex/glob syntax, references between keys, mark bits) live in
// checks.ts. `errorHint` is an annotation keyword of our own: the text messages.ts prints
// instead of ajv's generic message for that node.
//
// Enums and "string or integer" are written as plain `enum` / `type: [..]` nodes (Unsafe), not as
// TypeBox unions: a union compiles to `anyOf`, whose ajv errors would change the messages.
import { Type, type Static, type TUnsafe } from '@sinclair/typebox';

const Opt = Type.Optional;
/** A mapping that refuses unknown keys; every key optional unless `required` names it. */
const Section = <T extends Parameters<typeof Type.Object>[0]>(properties: T) => Type.Object(properties, { additionalProperties: false });
const Enum = <const T extends readonly string[]>(values: T): TUnsafe<T[number]> => Type.Unsafe<T[number]>({ enum: values });

const portSpec = Type.Unsafe<string | number>({
  type: ['string', 'integer'],
  errorHint: 'must be a port (1-65535) or a range "LOW-HIGH"',
});
const portList = Type.Array(portSpec);
const cidrList = Type.Array(Type.String({ errorHint: 'must be a CIDR string such as "10.0.0.0/8"' }));
// What iptables and the kernel agree on: at most 15 characters (IFNAMSIZ 16 with the NUL), and a
// trailing "+" is iptables' wildcard (every name with that prefix; verifier/decide.ts matches the
// same way). Characters are limited to the ones real interface names use, so that a name means
// the same to iptables(-restore), to the kernel and to the handler.
const ifaceName = Type.String({
  pattern: '^(?!\\.\\.?$)[A-Za-z0-9_.-]{0,14}[A-Za-z0-9_.+-]$',
  errorHint:
    'must be an interface name: 1-15 characters of A-Z a-z 0-9 _ . - (a trailing "+" matches every name that starts with the rest, as in iptables)',
});
const ifaceList = Type.Array(ifaceName, { uniqueItems: true });

export const logLevels = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export const logFormats = ['json', 'text'] as const;
export const failModes = ['closed', 'open'] as const;
export const familyNames = ['ipv4', 'ipv6'] as const;
export const egressActions = ['allow', 'deny', 'log'] as const;
export const verifierActions = ['drop', 'mark', 'log'] as const;
export const verifierHooks = ['input', 'forward'] as const;
export const protoMatches = ['tcp', 'udp', 'icmp', 'any'] as const;
export const holderModes = ['any', 'all'] as const;
export const ebpfModes = ['auto', 'on', 'off'] as const;
export const agentProfiles = ['v1', 'compat'] as const;
export const verifierProfiles = ['v1', 'compat', 'any'] as const;
/** What a NAT on the path translates (v1's S, D and P flags). */
export const natParts = ['source', 'destination', 'ports'] as const;

const failMode = Enum(failModes);
const queueCount = Type.Integer({ minimum: 1, maximum: 64 });
const families = Type.Array(Enum(familyNames), { minItems: 1, uniqueItems: true });
const queueNum = Type.Integer({ minimum: 0, maximum: 65535 });
const markValue = Type.Unsafe<number | string>({
  type: ['integer', 'string'],
  errorHint: 'must be an integer or a hex string such as "0x100"',
});
const keyName = Type.String({
  pattern: '^[A-Za-z0-9_.-]{1,64}$',
  errorHint: 'must be a key name (letters, digits, "_", ".", "-")',
});
const nonEmpty = () => Type.String({ minLength: 1 });
// Tag names: like key names, but not all digits (a number is a tag number, never a name).
const tagName = Type.String({
  pattern: '^(?![0-9]+$)[A-Za-z0-9_.-]{1,64}$',
  errorHint: 'must be a tag name (letters, digits, "_", ".", "-"; not only digits)',
});
/** `tag: NAME|NUMBER`: a name under `tags` or a number 1-65535 (checks.ts resolves names and ranges). */
const tagRef = Type.Unsafe<string | number>({
  type: ['string', 'integer'],
  errorHint: 'must be a tag name under tags or a tag number (1-65535)',
});
const natList = Type.Array(Enum(natParts), { minItems: 1, uniqueItems: true });

const appMatcher = Section({
  exe: Opt(nonEmpty()),
  sha256: Opt(Type.String({ pattern: '^[0-9a-fA-F]{64}$', errorHint: 'must be a SHA-256 digest: exactly 64 hex digits' })),
  user: Opt(Type.Unsafe<string | number>({ type: ['string', 'integer'], errorHint: 'must be a user name or a numeric uid' })),
  cgroup: Opt(nonEmpty()),
  cmdline: Opt(nonEmpty()),
  holders: Opt(Enum(holderModes)),
});

const dstMatcher = Section({
  cidr: Opt(cidrList),
  ports: Opt(portList),
  proto: Opt(Enum(protoMatches)),
});

const egressRule = Section({
  name: Opt(nonEmpty()),
  app: Opt(appMatcher),
  dst: Opt(dstMatcher),
  action: Enum(egressActions),
  tag: Opt(tagRef),
});

const verifierRule = Section({
  name: Opt(nonEmpty()),
  in_interfaces: Opt(ifaceList),
  out_interfaces: Opt(ifaceList),
  sources: Opt(cidrList),
  destinations: Opt(cidrList),
  ports: Opt(portList),
  keys: Opt(Type.Array(keyName, { minItems: 1, uniqueItems: true })),
  action: Opt(Enum(verifierActions)),
  tags: Opt(Type.Array(tagRef, { minItems: 1, uniqueItems: true })),
  allow_nat: Opt(natList),
});

// `propertyNames` has no TypeBox builder (Type.Record compiles to patternProperties, whose error
// would not name the bad key the way messages.ts reports it).
// A key is a path (key id 0) or { file, id }: one node with both types (not anyOf, whose errors
// would read worse), so a wrong scalar keeps today's message.
const keysSection = Type.Unsafe<Record<string, string | { file: string; id?: number }>>({
  type: 'object',
  propertyNames: keyName,
  additionalProperties: {
    type: ['string', 'object'],
    minLength: 1,
    errorHint: 'must be the path of a key file (or a mapping { file: PATH, id: 0-7 })',
    properties: {
      file: { type: 'string', minLength: 1, errorHint: 'must be the path of a key file' },
      id: { type: 'integer', minimum: 0, maximum: 7 },
    },
    required: ['file'],
    additionalProperties: false,
  },
});

const tagsSection = Type.Unsafe<Record<string, number>>({
  type: 'object',
  propertyNames: tagName,
  additionalProperties: { type: 'integer', minimum: 1, maximum: 65535, errorHint: 'must be a tag number (1-65535)' },
});

export const configSchema = Section({
  keys: Opt(keysSection),
  tags: Opt(tagsSection),
  log: Opt(
    Section({
      level: Opt(Enum(logLevels)),
      format: Opt(Enum(logFormats)),
      file: Opt(nonEmpty()),
      egress_decisions: Opt(
        Section({
          allow_per_second: Opt(Type.Integer({ minimum: 0, maximum: 100000 })),
          deny_per_second: Opt(Type.Integer({ minimum: 0, maximum: 100000 })),
          summary_seconds: Opt(Type.Integer({ minimum: 1, maximum: 3600 })),
        }),
      ),
    }),
  ),
  agent: Opt(
    Section({
      key: Opt(keyName),
      interfaces: Opt(ifaceList),
      families: Opt(families),
      label: Opt(Section({ destinations: Opt(cidrList), ports: Opt(portList) })),
      fail: Opt(failMode),
      queues: Opt(queueCount),
      queue_base: Opt(queueNum),
      mark: Opt(Section({ done: Opt(markValue), deny: Opt(markValue), allow: Opt(markValue), tag_mask: Opt(markValue) })),
      identity: Opt(
        Section({
          ebpf: Opt(Enum(ebpfModes)),
          exhaustive: Opt(Type.Boolean()),
          hash: Opt(Type.Boolean()),
          index_interval_ms: Opt(Type.Integer({ minimum: 0, maximum: 3600000 })),
        }),
      ),
      egress: Opt(
        Section({
          default: Opt(Enum(egressActions)),
          unknown: Opt(Enum(egressActions)),
          rules: Opt(Type.Array(egressRule)),
          queue: Opt(queueNum),
        }),
      ),
      profile: Opt(Enum(agentProfiles)),
      gso: Opt(Type.Boolean()),
      nat: Opt(Type.Array(Section({ destinations: Type.Array(cidrList.items, { minItems: 1 }), translated: natList }))),
    }),
  ),
  verifier: Opt(
    Section({
      hook: Opt(Enum(verifierHooks)),
      action: Opt(Enum(verifierActions)),
      families: Opt(families),
      fail: Opt(failMode),
      queues: Opt(queueCount),
      queue_base: Opt(queueNum),
      mark: Opt(
        Section({
          mask: Opt(markValue),
          valid: Opt(markValue),
          invalid: Opt(markValue),
          unlabelled: Opt(markValue),
          malformed: Opt(markValue),
          tag_mask: Opt(markValue),
        }),
      ),
      rules: Opt(Type.Array(verifierRule)),
      profile: Opt(Enum(verifierProfiles)),
      epoch_window: Opt(
        Section({ before: Opt(Type.Integer({ minimum: 0, maximum: 16 })), after: Opt(Type.Integer({ minimum: 0, maximum: 16 })) }),
      ),
    }),
  ),
  control: Opt(Section({ socket: Opt(nonEmpty()) })),
  metrics: Opt(
    Section({
      // PORT, ADDR:PORT or [IPv6]:PORT; checks.ts parses it (config/listen.ts).
      listen: Opt(
        Type.Unsafe<string | number>({
          type: ['string', 'integer'],
          errorHint: 'must be PORT, ADDR:PORT or [IPv6]:PORT (e.g. 9464, 127.0.0.1:9464)',
        }),
      ),
    }),
  ),
});

/** The config file as written (after the schema accepted it). */
export type RawConfig = Static<typeof configSchema>;

export type LogLevel = (typeof logLevels)[number];
export type LogFormat = (typeof logFormats)[number];
export type FailMode = (typeof failModes)[number];
/** An address family as the config names it; code uses Family (4 | 6, wire/packet.ts). */
export type FamilyName = (typeof familyNames)[number];
export type EgressAction = (typeof egressActions)[number];
export type VerifierAction = (typeof verifierActions)[number];
export type VerifierHook = (typeof verifierHooks)[number];
export type ProtoMatch = (typeof protoMatches)[number];
export type HolderMode = (typeof holderModes)[number];
export type EbpfMode = (typeof ebpfModes)[number];
export type AgentProfile = (typeof agentProfiles)[number];
export type VerifierProfile = (typeof verifierProfiles)[number];
export type NatPart = (typeof natParts)[number];
