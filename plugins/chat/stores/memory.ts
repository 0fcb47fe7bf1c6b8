/** A store that keeps everything in memory: for tests and for rooms nobody needs after a restart. */

import type { ChatStore, FileRecord, HistoryQuery, HistoryRecord, RoomRecord } from '../store.ts';

export class MemoryStore implements ChatStore {
  private readonly rooms = new Map<string, RoomRecord>();
  private readonly messages = new Map<string, HistoryRecord[]>();
  private readonly kept: FileRecord[] = [];

  async open(): Promise<void> {}

  async loadRooms(): Promise<RoomRecord[]> {
    return [...this.rooms.values()];
  }

  async saveRoom(room: RoomRecord): Promise<void> {
    this.rooms.set(room.key, structuredClone(room));
  }

  async deleteRoom(key: string): Promise<void> {
    this.rooms.delete(key);
    this.messages.delete(key);
  }

  async appendMessage(m: HistoryRecord): Promise<void> {
    let list = this.messages.get(m.room);
    if (list === undefined) this.messages.set(m.room, (list = []));
    list.push(m);
  }

  async history(room: string, q: HistoryQuery): Promise<HistoryRecord[]> {
    const list = (this.messages.get(room) ?? []).filter((m) => q.since === undefined || m.receivedAt > q.since);
    return q.limit <= 0 ? [] : list.slice(-q.limit);
  }

  async prune(room: string, keep: number): Promise<void> {
    const list = this.messages.get(room);
    if (list !== undefined && list.length > keep) list.splice(0, list.length - keep);
  }

  async addFile(f: FileRecord): Promise<void> {
    this.kept.push(f);
  }

  async files(room: string, owner: string): Promise<FileRecord[]> {
    return this.kept.filter((f) => f.room === room && f.owner === owner);
  }

  async filesBefore(owner: string, before: Date): Promise<FileRecord[]> {
    return this.kept.filter((f) => f.owner === owner && f.receivedAt < before);
  }

  async deleteFile(id: string, owner: string): Promise<void> {
    const i = this.kept.findIndex((f) => f.id === id && f.owner === owner);
    if (i >= 0) this.kept.splice(i, 1);
  }

  async close(): Promise<void> {}
}
