// v1's NAT tolerance flags as the config knows them. The same values as NAT_SRC/NAT_DST/NAT_PORTS
// in label/profile.ts (config imports only util; a unit test holds them equal).
export const NAT_SRC = 1;
export const NAT_DST = 2;
export const NAT_PORTS = 4;
