/**
 * The example policy of docs/policy.md, shared by the policy tests and `bench/policy.ts`: 3 regions, 4 listed
 * datasets (global, home within jurisdiction, a region list with cadence and rate, local), a deny, a release
 * and an allow rule.
 */
export const examplePolicyText = `version: 7
unlisted: global
regions:
  eu-west:    { jurisdiction: eu, location: [53.3, -6.3] }
  eu-central: { jurisdiction: eu, location: [50.1, 8.7] }
  us-east:    { jurisdiction: us, location: [38.9, -77.0] }
datasets:
  catalog:  { type: map, placement: global, priority: high }
  profiles: { type: map, placement: { home: doc.origin, within: jurisdiction } }
  orders:   { type: map, placement: { regions: [eu-west, us-east] }, cadence: 30s, rate: { bytesPerSecond: 1048576, entriesPerSecond: 5000 } }
  audits:   { type: lww, placement: local }
rules:
  - name: pii stays in its jurisdiction
    deny: "'pii' in doc.tags && target.jurisdiction != source.jurisdiction"
  - name: reviewed documents leave quarantine
    release: "'reviewed' in doc.tags"
  - name: shared catalog items go to us-east too
    allow: "doc.dataset == 'orders' && 'shared' in doc.tags"
`;
