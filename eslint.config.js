// Type-checked lint for the runtime's source. `npm run lint`; part of `npm test`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'bench/**',
      'scripts/**',
      'node_modules/**',
      'test-artifacts/**',
      '**/*.cjs',
      'eslint.config.js',
      'vitest.config.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Machines are pure statecharts: no I/O, no runtime internals.
    files: ['machines/**/*.ts'],
    rules: {
      // XState's `types: { input: {} as T }` idiom is a type declaration, not a cast.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', '../src/*', '@nats-io/*', 'pino', 'better-sqlite3'],
              message: 'machines are pure: no I/O and no runtime imports',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/transport/**', 'src/testing/**', 'src/store/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['@nats-io/*'], message: 'only src/transport (messages) and src/store (JetStream persistence) import NATS' }],
        },
      ],
    },
  },
);
