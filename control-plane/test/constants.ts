/** Credentials of the loopback S3 store the workerd tests talk to (test-only values). */
export const TEST_S3 = {
  bucket: 'rgrid-test',
  region: 'us-east-1',
  accessKeyId: 'rgrid-test-access',
  secretAccessKey: 'rgrid-test-secret-0123456789',
  adminSecret: 'test-admin-secret-0123456789',
} as const;
