// Data shapes of application identity, shared by identity (producer) and policy (consumer).

export type FlowProto = 'tcp' | 'udp' | 'icmp';

/** A flow as seen by the agent on its way out: src is the local end. */
export interface FlowTuple {
  family: 4 | 6;
  proto: FlowProto;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Executable path as the kernel reports it, without a " (deleted)" suffix. */
  exe: string;
  /** True when the executable file was deleted or replaced since the process started. */
  exeDeleted: boolean;
  /** Lower-case hex SHA-256 of the executable's bytes; undefined when it cannot be read. */
  sha256?: string;
  cmdline: string[];
  uid: number;
  user?: string;
  /** cgroup v2 path (the "0::" line), or the first v1 path when there is no v2 line. */
  cgroup: string;
  /** systemd unit (e.g. "ssh.service", "session-3.scope") when the cgroup names one. */
  unit?: string;
  /** 64-hex container id when the cgroup is a docker/containerd/podman/cri-o one. */
  containerId?: string;
}

export interface SocketInfo {
  inode: number;
  uid: number;
}

export interface Attribution {
  socket?: SocketInfo;
  holders: ProcessInfo[];
  /** True when no process holding the flow's socket could be found. */
  unknown: boolean;
  reason?: string;
}
