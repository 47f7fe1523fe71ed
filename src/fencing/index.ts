export { FencingVerifier, toToken, type FencingCheck } from './verifier.js';
export {
  fencingInterceptor,
  fencingMetadata,
  fencingClientInterceptor,
  FENCING_METADATA_KEY,
  FENCING_HIGHEST_METADATA_KEY,
  DEFAULT_FENCING_RESOURCE,
  type FencedCall,
  type FencingInterceptorOptions,
} from './interceptor.js';
