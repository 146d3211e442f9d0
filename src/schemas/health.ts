import { Type } from '@sinclair/typebox';

export const Health = Type.Object({ status: Type.Literal('ok') });
export const Readiness = Type.Object({
  status: Type.Union([
    Type.Literal('ready'),
    Type.Literal('waiting_for_app_ticket'),
    Type.Literal('database_unreachable'),
  ]),
  storeApp: Type.Union([Type.Literal('configured'), Type.Literal('not_configured')]),
});
