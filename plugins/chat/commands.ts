/**
 * Room commands a participant types: a regular text/plain message to the room whose text is
 * one of these is not copied to the room; the focus carries it out and answers the sender
 * with a private status message. Any other text starting with `/` (`/me waves`) is an ordinary
 * message. A target is a nickname (quoted when it has spaces) or a user URI.
 *
 *   /help                      what you may do here
 *   /who                       who is in the room
 *   /subject <text>            sets the subject (moderators)
 *   /kick <who> [reason]       removes the user's sessions (moderators)
 *   /ban <who> [reason]        kicks and bans the user (moderators)
 *   /unban <uri>               lifts a ban (moderators)
 *   /mute <who>, /unmute <who> stops or allows the user's regular messages (moderators)
 *   /role <who> <role>         owner, moderator or member (moderators; owner by owners)
 *   /files                     the files kept in the room (files.ts)
 *   /get <id>                  sends a kept file to the session that asks
 */

export type CommandName = 'help' | 'who' | 'subject' | 'kick' | 'ban' | 'unban' | 'mute' | 'unmute' | 'role' | 'files' | 'get';

export interface Command {
  readonly name: CommandName;
  /** Target, then the rest (reason, role); for subject the whole text. */
  readonly args: readonly string[];
}

const NAMES = new Set<CommandName>(['help', 'who', 'subject', 'kick', 'ban', 'unban', 'mute', 'unmute', 'role', 'files', 'get']);

/** Texts longer than this are never commands. */
export const MAX_COMMAND_BYTES = 4096;

/** The command a text is, or undefined when it is a message. */
export function parseCommand(text: string): Command | undefined {
  const t = text.replace(/\r?\n$/, '');
  const m = /^\/([a-z]+)(?:\s+([\s\S]*))?$/.exec(t);
  if (m === null || !NAMES.has(m[1] as CommandName)) return undefined;
  const name = m[1] as CommandName;
  const rest = (m[2] ?? '').trim();
  if (name === 'subject') return { name, args: rest === '' ? [] : [rest] };
  const args: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (rest[i] === ' ' || rest[i] === '\t') i++;
    if (i >= rest.length) break;
    if (rest[i] === '"') {
      const end = rest.indexOf('"', i + 1);
      if (end === -1) return { name, args: [...args, rest.slice(i + 1)] };
      args.push(rest.slice(i + 1, end));
      i = end + 1;
    } else {
      let j = i;
      while (j < rest.length && rest[j] !== ' ' && rest[j] !== '\t') j++;
      args.push(rest.slice(i, j));
      i = j;
    }
    // After the target, the rest is one argument (a reason), except for /role's role.
    if (args.length === 1 && (name === 'kick' || name === 'ban')) {
      const reason = rest.slice(i).trim();
      if (reason !== '') args.push(reason);
      break;
    }
  }
  return { name, args };
}

export const HELP_TEXT = [
  'Commands:',
  '/who — who is here',
  '/subject <text> — set the subject (moderators)',
  '/kick <nickname or URI> [reason] (moderators)',
  '/ban <nickname or URI> [reason], /unban <URI> (moderators)',
  '/mute <nickname or URI>, /unmute <nickname or URI> (moderators)',
  '/role <nickname or URI> owner|moderator|member (moderators; owner by owners)',
  '/files — the files kept here; /get <id> — send me one',
].join('\n');
