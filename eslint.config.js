// Lint: typescript-eslint with the rules that know promises, and the layer
// rules of docs/architecture.md ("Folders") as import restrictions.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** A relative import that reaches into one of these folders. */
const into = (...dirs) => ({
  regex: `(^|/)(${dirs.join('|')})/`,
  message: `see the folder map in docs/architecture.md: this folder may not import ${dirs.join(', ')}`,
});
const io = (names) => names.map((name) => ({ name, message: 'src/core is pure: no I/O (see docs/architecture.md)' }));
const restrict = (files, patterns, paths = []) => ({ files, rules: { 'no-restricted-imports': ['error', { patterns, paths }] } });
const NOT_IN_SRC = into('dev', 'test', 'bench');
/**
 * The client SDK's direct mode routes with the router's own forwarder (and
 * through it the shard connection) and parses batches with the router's
 * parser, so there is one copy of that logic. Those modules, and what they
 * load, need neither Redis nor Fastify; the rest of router/ stays out.
 */
const CLIENT_MAY_USE = {
  regex: '(^|/)router/(?!(forwarder|batch)\\.js$)',
  message: 'see the folder map in docs/architecture.md: of router/, the client may use forwarder.js and batch.js only',
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'data/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, properties: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-control-regex': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.js', '**/*.mjs'], languageOptions: { globals: globals.node } },
  // The dashboard's script runs in the browser.
  { files: ['src/router/dashboard/**/*.js'], languageOptions: { globals: globals.browser } },
  // The layers (docs/architecture.md, "Folders").
  restrict(
    ['src/core/**'],
    [into('infra', 'rebalance', 'router', 'shard', 'cli', 'local', 'dev', 'test', 'bench')],
    io(['node:net', 'node:http', 'node:fs', 'node:child_process', 'ioredis', 'fastify', 'lmdb', 'undici']),
  ),
  restrict(['src/infra/**'], [into('rebalance', 'router', 'shard', 'cli', 'local', 'dev', 'test', 'bench')]),
  restrict(['src/rebalance/**'], [into('router', 'shard', 'cli', 'local', 'dev', 'test', 'bench')]),
  restrict(['src/router/**'], [into('shard', 'cli', 'local', 'dev', 'test', 'bench')]),
  restrict(['src/shard/**'], [into('router', 'rebalance', 'cli', 'local', 'dev', 'test', 'bench')]),
  restrict(['src/local/**'], [into('infra', 'rebalance', 'router', 'shard', 'cli', 'dev', 'test', 'bench')]),
  restrict(['src/client/**'], [into('infra', 'rebalance', 'shard', 'cli', 'local', 'dev', 'test', 'bench'), CLIENT_MAY_USE]),
  restrict(['src/cli/**', 'src/index.ts'], [NOT_IN_SRC]),
  restrict(['dev/**'], [into('infra', 'rebalance', 'router', 'shard', 'cli', 'test', 'bench')]),
);
