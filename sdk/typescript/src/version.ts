/** The SDK version, sent to the service in the worker's hello. */
export const VERSION = "0.1.0";
