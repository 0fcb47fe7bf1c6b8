/**
 * The chat store for the configured driver (plugins/chat/store.ts has the interface): apart from
 * it, so the interface imports none of its implementations. A driver's package is imported only
 * when it is configured.
 */

import type { ChatOptions } from '../options.ts';
import type { ChatStore } from '../store.ts';

/** A store for the configured driver (no connection is opened until open()). */
export async function createStore(o: ChatOptions['store']): Promise<ChatStore> {
  switch (o.driver) {
    case 'memory':
      return new (await import('./memory.ts')).MemoryStore();
    case 'sqlite3':
    case 'pg':
      return (await import('./sql.ts')).openSqlStore(o.driver, o);
  }
}
