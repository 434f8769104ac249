// ESLint (flat config) with typescript-eslint, type-aware (recommendedTypeChecked). src/ is held to the house
// rules: no `any` (no-explicit-any and the no-unsafe-* family are errors), no `as never`. Tests, fakes and bench/ poke at
// untyped JSON on purpose, so there `any` and its unsafe uses are allowed; everything else still applies.
// Formatting is Prettier's job (`npm run format:check`), so no stylistic rules here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'node_modules/', 'coverage/', '**/*.mjs', '*.config.ts', '*.config.js', '.dependency-cruiser.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // tsconfig.test.json covers src/ and test/; bench/ has its own (it compiles against dist/)
        project: ['./tsconfig.test.json', './bench/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // a synchronous implementation of an async contract (the SQLite store behind SessionStore) is fine
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a deliberately unused binding; `{ dropped: _, ...rest }` is how a key is removed
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      // `as never` silences the checker as thoroughly as `any` does (house style: neither in src/)
      'no-restricted-syntax': ['error', { selector: 'TSAsExpression > TSNeverKeyword.typeAnnotation', message: 'no `as never`: type the value instead' }],
    },
  },
  {
    files: ['test/**/*.ts', 'src/**/*.test.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-redundant-type-constituents': 'off',
      // `String(data)` on a ws message (Buffer | ArrayBuffer | Buffer[]) and `expect(obj.method)` are idioms here
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // rethrowing a stored `unknown` setup failure; `x = track(start())` kept for teardown
      '@typescript-eslint/only-throw-error': 'off',
      'no-useless-assignment': 'off',
      'no-restricted-syntax': 'off',
    },
  },
);
