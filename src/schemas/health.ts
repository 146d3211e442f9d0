import { Type } from '@sinclair/typebox';
import { StringEnum } from './common.js';

export const Health = Type.Object({ status: StringEnum(['ok']) }, { description: 'The process is up' });

const readiness = (description: string) =>
  Type.Object(
    {
      status: StringEnum(['ready', 'waiting_for_app_ticket', 'database_unreachable']),
      storeApp: StringEnum(['configured', 'not_configured']),
      pushes: StringEnum(['signed', 'unsigned', 'not_configured'], {
        description: 'signed: pushes must be encrypted and signed (LARK_ENCRYPT_KEY); unsigned: only the verification token in the body authenticates them',
      }),
    },
    { description },
  );
export const Ready = readiness('Ready: the database answers and, for a store app, an app_ticket is known');
export const NotReady = readiness('Not ready: the database does not answer, or the store app still waits for its first app_ticket');
