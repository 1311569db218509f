export type {
  AllocateOptions,
  AreaType,
  CapSet,
  ManageResponse,
  StatusResponse,
  TransferOptions,
} from './ibp-client';
export { CHUNK_SIZE, DEFAULT_DEPOT, depotOf, IbpClient, SMALL_MAX } from './ibp-client';
