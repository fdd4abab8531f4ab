-- labelwall.lua: Wireshark/tshark dissector for labelwall's TCP labels, both profiles.
--
-- A label is TCP option kind 253 (RFC 3692 experimental) with ExID 0x4677 (RFC 6994):
--   length 40  compat  bytes 4-7 reserved, 8-39 HMAC-SHA256          (src/label/compat.ts)
--   length 20  v1 full     byte 4 = version(2) S D P key id(3), 5 epoch8, 6-7 app tag,
--   length 16  v1 compact  8-19 (full) / 8-15 (compact) truncated MAC   (docs/label-v1.md)
-- Kind 253 with any other ExID is someone else's experiment and is left alone.
--
-- Hooked as a postdissector that reads the TCP dissector's own "tcp.options" field: the TCP
-- dissector (and its handling of kind 253 for TCP Fast Open and others) stays exactly as it
-- is, and this script only adds a "labelwall" tree next to it. It shows labels; it does not
-- verify MACs (that needs the key: use `labelwall pcap verify`).
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ or run `tshark -X lua_script:labelwall.lua`.
-- Tag names: preference labelwall.tags_file = a labelwall config YAML; its top-level
-- `tags:` mapping (name: number) names the app tags (`-o labelwall.tags_file:PATH`).

local LABEL_KIND = 253
local LABEL_EXID = 0x4677
local COMPAT_LENGTH = 40
local V1_FULL_LENGTH = 20
local V1_COMPACT_LENGTH = 16
local V1_VERSION = 1 -- bits 7-6 of byte 4 = 01
local EPOCH_SECONDS = 16
-- The verifier's default epoch window, [now_E - 2, now_E + 1], applied to the capture time.
local EPOCH_BEHIND = 2
local EPOCH_AHEAD = 1

local lw = Proto('labelwall', 'labelwall label (TCP option 253, ExID 0x4677)')

local pf = {
  profile = ProtoField.string('labelwall.profile', 'Profile'),
  form = ProtoField.string('labelwall.form', 'Form'),
  kind = ProtoField.uint8('labelwall.kind', 'Kind', base.DEC),
  length = ProtoField.uint8('labelwall.length', 'Length', base.DEC),
  exid = ProtoField.uint16('labelwall.exid', 'ExID', base.HEX),
  reserved = ProtoField.bytes('labelwall.reserved', 'Reserved'),
  flags = ProtoField.uint8('labelwall.flags', 'Version, NAT bits, key id', base.HEX),
  version = ProtoField.uint8('labelwall.version', 'Version bits', base.DEC, nil, 0xc0),
  nat_s = ProtoField.bool('labelwall.nat.s', 'S (source address left out of the MAC)', 8, nil, 0x20),
  nat_d = ProtoField.bool('labelwall.nat.d', 'D (destination address left out of the MAC)', 8, nil, 0x10),
  nat_p = ProtoField.bool('labelwall.nat.p', "P (ports of S/D left out of the MAC)", 8, nil, 0x08),
  key_id = ProtoField.uint8('labelwall.key_id', 'Key id', base.DEC, nil, 0x07),
  epoch8 = ProtoField.uint8('labelwall.epoch8', 'Epoch8 (E mod 256)', base.DEC),
  epoch = ProtoField.uint32('labelwall.epoch', 'Epoch E (from the capture time)', base.DEC),
  tag = ProtoField.uint16('labelwall.tag', 'App tag', base.DEC),
  tag_name = ProtoField.string('labelwall.tag_name', 'App tag name'),
  mac = ProtoField.bytes('labelwall.mac', 'MAC'),
  malformed = ProtoField.string('labelwall.malformed', 'Malformed (reason a verifier gives)'),
}
lw.fields = pf

local ef = {
  bad_length = ProtoExpert.new('labelwall.bad_length', 'labelwall label with a length no profile defines (bad-label-length)',
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_version = ProtoExpert.new('labelwall.bad_version', 'labelwall v1-sized label whose version bits are not 01 (bad-label-version)',
    expert.group.MALFORMED, expert.severity.ERROR),
  compact_on_syn = ProtoExpert.new('labelwall.compact_on_syn', 'labelwall compact (16-byte) label on a SYN (compact-on-syn)',
    expert.group.MALFORMED, expert.severity.ERROR),
  two_labels = ProtoExpert.new('labelwall.two_labels', 'Two labelwall labels in one segment (duplicate-label)',
    expert.group.MALFORMED, expert.severity.ERROR),
  overrun = ProtoExpert.new('labelwall.overrun', 'labelwall label runs past the end of the TCP options (bad-option-length)',
    expert.group.MALFORMED, expert.severity.ERROR),
  truncated = ProtoExpert.new('labelwall.truncated', 'labelwall label cut off by the end of the capture (snap length)',
    expert.group.MALFORMED, expert.severity.WARN),
  stale_epoch = ProtoExpert.new('labelwall.stale_epoch',
    'labelwall v1 epoch8 outside [E-2, E+1] of the capture time (a verifier reading this capture says stale-epoch)',
    expert.group.SEQUENCE, expert.severity.WARN),
  tags_file = ProtoExpert.new('labelwall.tags_file_error', 'labelwall tags file could not be read', expert.group.PROTOCOL, expert.severity.WARN),
}
lw.experts = ef

lw.prefs.tags_file = Pref.string('Tags file', '',
  'A labelwall config YAML: its top-level "tags:" mapping (name: number) names the app tags. Empty: numbers only.')

local f_options = Field.new('tcp.options')

----------------------------------------------------------------------------------------------
-- Tags file: only the top-level `tags:` mapping of the YAML is read; everything else is
-- skipped, so any labelwall config works. Block style (`tags:` then indented `name: N` lines)
-- and flow style (`tags: {web: 300, ssh: 22}`) are understood; comments, quotes, CRLF too.

local tags = { path = nil, names = {}, error = nil }

-- Drops a YAML comment (a '#' at the start or after a blank, outside quotes).
local function strip_comment(s)
  local quote = nil
  for i = 1, #s do
    local c = s:sub(i, i)
    if quote then
      if c == quote then quote = nil end
    elseif c == '"' or c == "'" then
      quote = c
    elseif c == '#' and (i == 1 or s:sub(i - 1, i - 1):match('%s')) then
      return s:sub(1, i - 1)
    end
  end
  return s
end

local function trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

-- One `name: number` entry; returns name, number or nil, reason. A quoted name may hold ':'.
local function parse_entry(text)
  local key, value
  local q = text:sub(1, 1)
  if q == '"' or q == "'" then
    local close = text:find(q, 2, true)
    if close then key, value = text:sub(2, close - 1), text:sub(close + 1):match('^%s*:%s+(.-)$') end
  else
    key, value = text:match('^(.-)%s*:%s+(.-)$')
    if not key then key = text:match('^(.-)%s*:$') end
  end
  if not key or key == '' then return nil, 'expected "name: number"' end
  if not value or value == '' then return nil, 'tag "' .. key .. '" has no number' end
  local n
  if value:match('^%d+$') then
    n = tonumber(value, 10)
  elseif value:match('^0[xX]%x+$') then
    n = tonumber(value:sub(3), 16)
  end
  if not n then return nil, 'tag "' .. key .. '": "' .. value .. '" is not a number' end
  if n < 1 or n > 65535 then return nil, 'tag "' .. key .. '": ' .. value .. ' is outside 1-65535' end
  return key, n
end

-- Returns a number -> name table, or nil and "path:line: reason".
local function load_tags(path)
  local fh, err = io.open(path, 'rb')
  if not fh then return nil, tostring(err) end -- io.open's message names the file
  local text = fh:read('*a')
  fh:close()
  local names = {}
  local function add(lineno, entry)
    local name, n = parse_entry(entry)
    if not name then return path .. ':' .. lineno .. ': ' .. n end
    if names[n] == nil then names[n] = name end -- the first name of a number wins
    return nil
  end
  local lines = {}
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do lines[#lines + 1] = (line:gsub('\r$', '')) end
  local i = 1
  while i <= #lines do
    local rest = lines[i]:match('^tags%s*:(.*)$') or lines[i]:match('^["\']tags["\']%s*:(.*)$')
    if rest then
      local start = i
      rest = trim(strip_comment(rest))
      if rest:sub(1, 1) == '{' then
        -- Flow mapping, possibly over several lines, up to the closing brace.
        local flow = rest
        while not flow:find('}', 1, true) and i < #lines do
          i = i + 1
          flow = flow .. ' ' .. trim(strip_comment(lines[i]))
        end
        local body = flow:match('^{(.*)}%s*$')
        if not body then return nil, path .. ':' .. start .. ': tags: unterminated "{...}"' end
        for entry in (body .. ','):gmatch('([^,]*),') do
          entry = trim(entry)
          if entry ~= '' then
            local e = add(start, entry)
            if e then return nil, e end
          end
        end
        return names
      elseif rest ~= '' and rest ~= '~' and rest ~= 'null' then
        return nil, path .. ':' .. start .. ': tags: expected a mapping of name: number'
      end
      -- Block mapping: the indented lines that follow, up to the next top-level line.
      local indent = nil
      i = i + 1
      while i <= #lines do
        local line = lines[i]
        local body = strip_comment(line)
        if trim(body) ~= '' then
          local lead = body:match('^(%s*)')
          if #lead == 0 then break end -- next top-level key: the mapping is over
          if lead:find('\t', 1, true) then return nil, path .. ':' .. i .. ': tabs are not allowed in YAML indentation' end
          indent = indent or #lead
          if #lead ~= indent then return nil, path .. ':' .. i .. ': unexpected indentation under tags:' end
          local entry = trim(body)
          if entry:sub(1, 1) == '-' then return nil, path .. ':' .. i .. ': tags: is a mapping (name: number), not a list' end
          local e = add(i, entry)
          if e then return nil, e end
        end
        i = i + 1
      end
      return names
    end
    i = i + 1
  end
  return names -- no tags: in the file: numbers only
end

-- Loads the file named by the preference once per path (the preference may change).
local function tag_names()
  local path = lw.prefs.tags_file or ''
  if path ~= tags.path then
    tags.path = path
    tags.names = {}
    tags.error = nil
    if path ~= '' then
      local names, err = load_tags(path)
      if names then
        tags.names = names
      else
        tags.error = err
        report_failure('labelwall: tags file ' .. err)
      end
    end
  end
  return tags.names
end

function lw.prefs_changed()
  tags.path = nil -- reload at the next packet
end

----------------------------------------------------------------------------------------------
-- Dissection

-- The one E in [now_E - 2, now_E + 1] whose low byte is epoch8, or nil.
local function full_epoch(epoch8, seconds)
  local now_e = math.floor(seconds / EPOCH_SECONDS)
  for e = now_e - EPOCH_BEHIND, now_e + EPOCH_AHEAD do
    if e >= 0 and e % 256 == epoch8 then return e end
  end
  return nil
end

-- `cut`: the capture holds less of the options than the TCP header declares (snap length).
local function dissect_label(range, at, optlen, avail, syn, cut, pinfo, tree, count)
  local r = range(at, math.min(optlen, avail))
  local t = tree:add(lw, r)
  t:add(pf.kind, range(at, 1))
  t:add(pf.length, range(at + 1, 1))
  t:add(pf.exid, range(at + 2, 2))
  if count > 1 then
    t:add(pf.malformed, 'duplicate-label'):set_generated()
    t:add_proto_expert_info(ef.two_labels)
  end
  if optlen > avail then
    -- Past what was captured, the segment may be whole on the wire: no verdict. Past what the
    -- header declares, a verifier refuses the segment's options (src/wire/tcpopts.ts).
    if cut then
      t:add_proto_expert_info(ef.truncated)
      t:append_text(': cut off by the capture')
      return 'truncated'
    end
    t:add(pf.malformed, 'bad-option-length'):set_generated()
    t:add_proto_expert_info(ef.overrun, 'labelwall label of length ' .. optlen .. ' with ' .. avail ..
      ' bytes of options left: bad-option-length')
    t:append_text(': malformed, length ' .. optlen .. ' runs past the options')
    return 'malformed: bad-option-length'
  end
  if optlen == COMPAT_LENGTH then
    t:add(pf.profile, 'compat'):set_generated()
    t:add(pf.reserved, range(at + 4, 4))
    t:add(pf.mac, range(at + 8, 32))
    t:append_text(': compat')
    return 'compat'
  end
  if optlen ~= V1_FULL_LENGTH and optlen ~= V1_COMPACT_LENGTH then
    t:add(pf.malformed, 'bad-label-length'):set_generated()
    t:add_proto_expert_info(ef.bad_length, 'labelwall label of length ' .. optlen .. ' (compat is 40, v1 20 or 16): bad-label-length')
    t:append_text(': malformed, length ' .. optlen)
    return 'malformed: bad-label-length'
  end
  local b4 = range(at + 4, 1):uint()
  local ft = t:add(pf.flags, range(at + 4, 1))
  ft:add(pf.version, range(at + 4, 1))
  if bit.rshift(b4, 6) ~= V1_VERSION then
    t:add(pf.malformed, 'bad-label-version'):set_generated()
    t:add_proto_expert_info(ef.bad_version)
    t:append_text(': malformed, version bits ' .. bit.rshift(b4, 6))
    return 'malformed: bad-label-version'
  end
  local compact = optlen == V1_COMPACT_LENGTH
  t:add(pf.profile, 'v1'):set_generated()
  t:add(pf.form, compact and 'compact' or 'full'):set_generated()
  ft:add(pf.nat_s, range(at + 4, 1))
  ft:add(pf.nat_d, range(at + 4, 1))
  ft:add(pf.nat_p, range(at + 4, 1))
  ft:add(pf.key_id, range(at + 4, 1))
  local epoch8 = range(at + 5, 1):uint()
  local et = t:add(pf.epoch8, range(at + 5, 1))
  local e = full_epoch(epoch8, pinfo.abs_ts)
  if e then
    t:add(pf.epoch, e):set_generated()
  else
    et:add_proto_expert_info(ef.stale_epoch)
  end
  local tag = range(at + 6, 2):uint()
  local tt = t:add(pf.tag, range(at + 6, 2))
  local names = tag_names()
  local name = names[tag]
  if tag == 0 then
    tt:append_text(' (unclassified)')
  elseif name then
    t:add(pf.tag_name, name):set_generated()
    tt:append_text(' (' .. name .. ')')
  elseif tags.error then
    tt:add_proto_expert_info(ef.tags_file, 'labelwall tags file: ' .. tags.error)
  end
  t:add(pf.mac, range(at + 8, optlen - 8))
  if compact and syn then
    t:add(pf.malformed, 'compact-on-syn'):set_generated()
    t:add_proto_expert_info(ef.compact_on_syn)
  end
  t:append_text(string.format(': v1 %s, key id %d, tag %d%s%s', compact and 'compact' or 'full', bit.band(b4, 7), tag,
    name and (' (' .. name .. ')') or '', compact and syn and ', malformed (compact-on-syn)' or ''))
  if compact and syn then return 'malformed: compact-on-syn' end
  return string.format('v1 key %d tag %s', bit.band(b4, 7), name or tostring(tag))
end

-- Walks one TCP header's options (the bytes of one "tcp.options" field) for our labels.
local function dissect_options(fi, pinfo, tree)
  local range = fi.range
  local n = range:len()
  -- The SYN flag: byte 13 of the TCP header, which starts 20 bytes before its options,
  -- and its data offset (byte 12): how many bytes of options it declares.
  local syn = false
  local cut = false
  if fi.offset >= 20 then
    syn = bit.band(fi.source(fi.offset - 20 + 13, 1):uint(), 0x02) ~= 0
    cut = n < bit.rshift(fi.source(fi.offset - 20 + 12, 1):uint(), 4) * 4 - 20
  end
  local count = 0
  local summary = nil
  local i = 0
  while i < n do
    local kind = range(i, 1):uint()
    if kind == 0 then break end
    if kind == 1 then
      i = i + 1
    else
      if i + 1 >= n then break end
      local optlen = range(i + 1, 1):uint()
      if optlen < 2 then break end -- the TCP dissector reports broken option lists
      if kind == LABEL_KIND and optlen >= 4 and i + 4 <= n and range(i + 2, 2):uint() == LABEL_EXID then
        count = count + 1
        local s = dissect_label(range, i, optlen, n - i, syn, cut, pinfo, tree, count)
        summary = count > 1 and 'malformed: duplicate-label' or s
      end
      i = i + optlen
    end
  end
  return summary
end

function lw.dissector(tvb, pinfo, tree)
  local infos = { f_options() }
  for _, fi in ipairs(infos) do
    local s = dissect_options(fi, pinfo, tree)
    if s then pinfo.cols.info:append(' [labelwall ' .. s .. ']') end
  end
end

register_postdissector(lw)
