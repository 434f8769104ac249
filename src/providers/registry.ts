/** provider kind → factory. The only place that knows the provider names. */
import { createAnthropicProvider } from './anthropic/index.js';
import { createMockProvider } from './mock/index.js';
import { createOllamaProvider } from './ollama/index.js';
import { createOpenAiProvider } from './openai/index.js';
import type { ChannelProvider, ProviderChannelConfig, ProviderFactory } from './provider.js';

const FACTORIES: Record<ProviderChannelConfig['provider'], ProviderFactory> = {
  openai: createOpenAiProvider,
  vllm: createOpenAiProvider,
  anthropic: createAnthropicProvider,
  ollama: createOllamaProvider,
  mock: createMockProvider,
};

export function createProvider(cfg: ProviderChannelConfig): ChannelProvider {
  return FACTORIES[cfg.provider](cfg);
}
