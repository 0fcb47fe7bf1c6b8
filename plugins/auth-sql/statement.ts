/**
 * SQL with named placeholders (`:username`, `:domain`, ...), turned into the
 * positional form each driver takes (`?` for SQLite and MySQL, `$1` for
 * PostgreSQL). Values are always sent apart from the text: nothing from a
 * request is ever spliced into SQL.
 */

export interface Statement {
  /** The text with the driver's positional placeholders. */
  readonly text: string;
  /** The placeholder names, in the order their values are sent. */
  readonly names: readonly string[];
}

/** A placeholder the configured query may not use, or a query that is not a statement. */
export class StatementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StatementError';
  }
}

/**
 * Compiles `sql`, calling `placeholder(i)` (0-based) for the i-th named
 * placeholder. Text inside quotes and comments is left alone, and so is
 * PostgreSQL's `::type` cast.
 *
 * @throws StatementError when `allowed` is given and a name is not in it.
 */
export function compileStatement(sql: string, placeholder: (index: number) => string, allowed?: ReadonlySet<string>): Statement {
  const names: string[] = [];
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === "'" || c === '"' || c === '`') {
      // Quoted text or identifier; a doubled quote inside is an escaped one.
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const j = end === -1 ? sql.length : end;
      out += sql.slice(i, j);
      i = j;
    } else if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      const j = end === -1 ? sql.length : end + 2;
      out += sql.slice(i, j);
      i = j;
    } else if (c === ':' && next === ':') {
      out += '::';
      i += 2;
    } else if (c === ':' && next !== undefined && /[A-Za-z_]/.test(next)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_]/.test(sql[j]!)) j++;
      const name = sql.slice(i + 1, j);
      if (allowed !== undefined && !allowed.has(name)) {
        throw new StatementError(`unknown placeholder :${name} (use ${[...allowed].map((n) => `:${n}`).join(', ')})`);
      }
      out += placeholder(names.length);
      names.push(name);
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return { text: out, names };
}

/** The values of a compiled statement, in placeholder order. */
export function bindValues(statement: Statement, values: Readonly<Record<string, unknown>>): unknown[] {
  return statement.names.map((n) => {
    if (!(n in values)) throw new Error(`no value for :${n}`);
    return values[n];
  });
}
