/** The release, as `--version` prints it and `sip_signaling_build_info` labels it. */
export const VERSION = "0.7.0";
