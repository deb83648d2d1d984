/**
 * Policies over the API: `GET /v1/policy`, `GET /v1/policy/history` and `POST /v1/policy` (plan, shadow,
 * enforce). Reading and planning need the operator role; installing (shadow, enforce) needs the policy-admin
 * role AND a signature by an operator key the cluster config names (core's `verifyPolicySignature`), for this
 * cluster, this version and this content, at most `policyVersionJumpMax` above the enforced version. A
 * signature that names a version it `replaces` is accepted only while that version is the enforced one. The
 * audit entries of an install name the token, the signing key and the replaced version.
 */
import { type FastifyReply, type FastifyRequest } from 'fastify';
import {
  type Policy,
  TesseraError,
  checkPolicySuccession,
  describeValue,
  isPlainObject,
  parsePolicy,
  policyBytesMax,
  verifyPolicySignature,
} from '@tessera/core';
import { policyHash } from '@tessera/store';
import { authorize } from '../auth/access.js';
import { type RouteContext, query, requireBody, schemaVerdict, sendJson } from './context.js';
import { type RouteSpec } from './define.js';
import { noQuery, objectOf, policySignatureSchema } from './schemas.js';

/**
 * The body of `POST /v1/policy`: a policy of up to `policyBytesMax` bytes as a JSON string, which escaping can
 * double (quotes, backslashes, line breaks, tabs; the other characters JSON escapes are no part of a YAML text),
 * and its signature.
 */
export const policyBodyBytesMax = 2 * policyBytesMax + 64 * 1024;
const bodyFields = ['text', 'mode', 'signature'];

/** The policy routes. */
export function policyRoutes(context: RouteContext): RouteSpec[] {
  const { replica, node } = context;
  const describe = (policy: Policy | null) => (policy === null ? null : { version: policy.version, hash: policyHash(policy), text: policy.text });

  async function postPolicy(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    query(request, []);
    const body = requireBody(request);
    if (!isPlainObject(body))
      throw new TesseraError(
        'ERR_BODY_INVALID',
        'POST /v1/policy body must be an object { "text": "<policy YAML or JSON>", "mode": "plan" | "shadow" | "enforce", "signature"?: {…} }',
      );
    for (const field of Object.keys(body)) {
      if (!bodyFields.includes(field))
        throw new TesseraError(
          'ERR_BODY_INVALID',
          `POST /v1/policy body: unknown field ${JSON.stringify(field).slice(0, 80)} (the fields are ${bodyFields.join(', ')})`,
        );
    }
    if (typeof body.text !== 'string') throw new TesseraError('ERR_BODY_INVALID', 'POST /v1/policy body: "text" must be the policy as a string');
    const mode = body.mode;
    if (mode !== 'plan' && mode !== 'shadow' && mode !== 'enforce') {
      throw new TesseraError('ERR_BODY_INVALID', `POST /v1/policy body: "mode" must be "plan", "shadow" or "enforce", got ${describeValue(mode, 40)}`);
    }
    // Installing changes what every region holds: the role first, before any parsing work.
    if (mode !== 'plan') authorize(request.tessera.principal!, { kind: 'policy-admin' }, 'POST /v1/policy');
    const policy = parsePolicy(body.text, 'policy');
    const stamp = { version: policy.version, hash: policyHash(policy) };
    // A plan is a dry run: it installs nothing, so an unsigned draft may be planned before it is signed.
    if (mode === 'plan') {
      schemaVerdict(request);
      return sendJson(reply, 200, { mode, policy: stamp, report: await replica.planPolicy(policy) });
    }
    const signing = context.policySigning;
    if (signing === undefined || signing.operatorKeys.length === 0) {
      throw new TesseraError(
        'ERR_POLICY_SIGNATURE_INVALID',
        `node ${node.id} has no operator key configured (operatorKey in the cluster config), so it installs no policy through the API`,
      );
    }
    const { signature, keyId } = verifyPolicySignature(policy, body.signature, signing.operatorKeys, signing.cluster);
    checkPolicySuccession(replica.policy === null ? null : { version: replica.policy.version, hash: policyHash(replica.policy) }, signature);
    schemaVerdict(request);
    const principal = request.tessera.principal!;
    const replaces = signature.replaces === null ? '' : ` replacing v${signature.replaces.version} ${signature.replaces.hash.slice(0, 12)}`;
    const source = `api token ${principal.name} (${principal.id}) signed by ${keyId}${replaces}`;
    const shadowBefore = replica.shadowPolicy;
    const report = await replica.installPolicy(policy, mode, source, signature);
    // Installing a shadow reports nothing; it changed something if the shadow is now another one.
    const changed = mode === 'enforce' ? report !== null : replica.shadowPolicy !== shadowBefore;
    // Only a change is news to the links (telling them makes them offer entries the peers refused again).
    if (mode === 'enforce' && changed) context.replication?.policyChanged?.();
    return sendJson(reply, 200, { mode, policy: stamp, changed, report });
  }

  return [
    {
      method: 'GET',
      url: '/v1/policy',
      summary: 'The enforced and shadow policy versions, hashes and texts',
      tags: ['policy'],
      need: () => ({ kind: 'operator' }),
      querystring: noQuery,
      response: objectOf('Enforced and shadow policies (null when none).', { region: { type: 'string' }, enforced: {}, shadow: {} }),
      handler: async (request, reply) => {
        query(request, []);
        return sendJson(reply, 200, { region: node.region, enforced: describe(replica.policy), shadow: describe(replica.shadowPolicy) });
      },
    },
    {
      method: 'POST',
      url: '/v1/policy',
      summary: 'Plan a policy (dry run), or install a signed one in shadow or enforce mode',
      tags: ['policy'],
      need: () => ({ kind: 'operator' }),
      querystring: noQuery,
      bodyLimit: policyBodyBytesMax,
      body: {
        type: 'object',
        required: ['text', 'mode'],
        additionalProperties: false,
        properties: { text: { type: 'string' }, mode: { enum: ['plan', 'shadow', 'enforce'] }, signature: policySignatureSchema },
      },
      response: objectOf('The policy stamp, whether anything changed, and the report of what the policy changes here.', {
        mode: { type: 'string' },
        policy: { type: 'object' },
      }),
      handler: postPolicy,
    },
    {
      method: 'GET',
      url: '/v1/policy/history',
      summary: 'Every stored policy version with its hash, source and state',
      tags: ['policy'],
      need: () => ({ kind: 'operator' }),
      querystring: noQuery,
      response: objectOf('Stored versions, oldest first.', { history: { type: 'array' } }),
      handler: async (request, reply) => {
        query(request, []);
        const enforced = replica.policy?.version ?? null;
        const shadow = replica.shadowPolicy?.version ?? null;
        const history = (await replica.policyHistory()).map((record) => ({
          ...record,
          state: record.version === enforced ? 'enforced' : record.version === shadow ? 'shadow' : 'stored',
        }));
        return sendJson(reply, 200, { history });
      },
    },
  ];
}
