// The API's endpoint id: also a file name in the CNI deletion queue, so no "/" and no leading ".".
/** 1-253 letters, digits, ".", "_" or "-", starting with a letter or digit. */
export const ENDPOINT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
