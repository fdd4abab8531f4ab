// Where things are in the YAML text: line and column of a value or a key by its key path (the
// nearest existing ancestor when the path is not in the file), and of the first alias.
import { isMap, isScalar, visit, type Document, type LineCounter, type Node as YamlNode } from 'yaml';
import type { Seg } from './messages.js';

export interface Pos {
  line: number;
  col: number;
}

export class Locator {
  private readonly pos: (offset: number) => Pos;
  constructor(
    private readonly doc: Document,
    lineCounter: LineCounter,
  ) {
    this.pos = (offset) => lineCounter.linePos(offset);
  }

  /** Position of the text at `offset`. */
  at(offset: number): Pos {
    return this.pos(offset);
  }

  /** Position of the value at `path`, or of its nearest existing ancestor. */
  value(path: Seg[]): Pos {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      const r = nodeRange(node);
      if (r !== undefined) return this.pos(r);
    }
    return { line: 1, col: 1 };
  }

  /** Position of the key `key` inside the mapping at `path`. */
  key(path: Seg[], key: string): Pos {
    const parent = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (isMap(parent)) {
      for (const pair of parent.items) {
        const k = pair.key;
        const kv = isScalar(k) ? String(k.value) : k;
        if (kv === key) {
          const r = nodeRange(k);
          if (r !== undefined) return this.pos(r);
        }
      }
    }
    return this.value(path);
  }

  /** The first alias whose anchor is not set before it (yaml's toJS throws on it), with its name. */
  unresolvedAlias(): (Pos & { name: string }) | undefined {
    let found: (Pos & { name: string }) | undefined;
    visit(this.doc, {
      Alias: (_key, node) => {
        if (node.resolve(this.doc) !== undefined) return undefined;
        found = { ...this.pos(node.range?.[0] ?? 0), name: node.source };
        return visit.BREAK;
      },
    });
    return found;
  }

  /** Where the first alias (*name) of the document is, for the alias-bomb message. */
  firstAlias(): Pos {
    let at: number | undefined;
    visit(this.doc, {
      Alias(_key, node) {
        at = node.range?.[0];
        return visit.BREAK;
      },
    });
    return at === undefined ? { line: 1, col: 1 } : this.pos(at);
  }
}

function nodeRange(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node) {
    const r = (node as YamlNode).range;
    if (Array.isArray(r)) return r[0];
  }
  return undefined;
}
