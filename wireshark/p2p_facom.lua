-- P2P FACOM: a Wireshark dissector for the protocol of protocol.py.
--
-- Install: copy this file to ~/.local/lib/wireshark/plugins/ (see
-- wireshark/README.md), or run `tshark -X lua_script:p2p_facom.lua -r F`.
-- It registers as a heuristic UDP dissector (magic "PF", a known version),
-- so any port works.  Display filters: pf, pf.type == 8 (NACKs),
-- pf.chunk.retransmission, pf.crc.status == 0 (bad CRC), pf.emulated_drop,
-- pf.stream == 2 (one session, like tcp.stream), pf.type >= 15 (the swarm:
-- HAVE, GET_PEERS, PEERS).
--
-- The tables below mirror protocol.py's docstring; tests/test_wireshark.py
-- compares them with protocol.py's constants and structs (drift test).
-- Field kinds: u8 u16 u32 u64 (unsigned, network order), id (8 bytes: the
-- file id: first 8 bytes of the SHA-256 of the piece hash list, or of the
-- file), sha (32 bytes), x1 (1 zero byte), ipv4 (4 bytes: an address).

local MAGIC = "PF"
local VERSION = 1
local HEADER_SIZE = 16
local CRC_AT = 12                  -- offset of the crc32 field
local MAX_DATAGRAM = 1472
local MAX_INFO_RANGES = 6          -- ranges (and peers) spelt out in the Info column
local MAX_PEERS_LISTED = 32        -- a PEERS listing more is malformed

-- Header (16 bytes): protocol.py HEADER
local HEADER = "magic:s2 version:u8 type:u8 flags:u8 reserved:x1 session:u32 length:u16 crc:u32"

-- Bodies: type = {NAME, field prefix, protocol.py struct, fixed part, tail}
-- tails: "" nothing after the fixed part; "text:F" UTF-8 to the end;
-- "padding:F" / "data:F" raw bytes to the end; "ranges:F" `count` RANGEs;
-- "files:F" `count` FILEs; "paged:page text:F" a u16 page when FLAG_PAGE
-- is set (else page 0, shown as generated), then UTF-8 to the end;
-- "hashes:F" 32-byte piece SHA-256s to the end; "peers:F" `count` PEERs.
local BODIES = {
  [1]  = {"PING",          "ping",    "PING_BODY",     "nonce:u32", "padding:padding"},
  [2]  = {"PONG",          "pong",    "PONG_FIXED",    "nonce:u32 token:u32 files:u16 load:u16 order:u8 ordered_percent:u8", "text:name"},
  [3]  = {"SEARCH",        "search",  "SEARCH_FIXED",  "token:u32", "paged:page text:query"},
  [4]  = {"SEARCH_RESULT", "result",  "COUNT",         "count:u16", "files:file"},
  [5]  = {"REQUEST",       "request", "REQUEST_FIXED", "file_id:id order:u8 ordered_percent:u8 token:u32 seed:u32 window:u16 count:u16", "ranges:range"},
  [6]  = {"CHUNK",         "chunk",   "CHUNK_FIXED",   "file_id:id index:u32 tx_seq:u32 send_ms:u32", "data:data"},
  [7]  = {"ACK",           "ack",     "ACK_BODY",      "limit:u32", ""},
  [8]  = {"NACK",          "nack",    "NACK_FIXED",    "limit:u32 round:u16 count:u16", "ranges:range"},
  [9]  = {"CANCEL",        "cancel",  "",              "", ""},
  [10] = {"DONE",          "done",    "DONE_BODY",     "sent:u32 resent:u32 dropped:u32 duplicated:u32 bytes_sent:u64", ""},
  [11] = {"RETRY",         "retry",   "RETRY_BODY",    "token:u32", ""},
  [12] = {"ERROR",         "error",   "ERROR_FIXED",   "code:u16", "text:text"},
  [13] = {"HASHES",        "hashes",  "HASHES_BODY",   "token:u32 file_id:id page:u16", ""},
  [14] = {"HASH_PAGE",     "hashpage", "HASH_PAGE_FIXED", "file_id:id page:u16 pages:u16", "hashes:hashes"},
  [15] = {"HAVE",          "have",    "HAVE_FIXED",    "token:u32 file_id:id pieces:u32 count:u16", "ranges:range"},
  [16] = {"GET_PEERS",     "getpeers", "GET_PEERS_BODY", "token:u32 file_id:id", ""},
  [17] = {"PEERS",         "peers",   "PEERS_FIXED",   "file_id:id count:u16", "peers:peer"},
}
-- Parts of tails: protocol.py RANGE, FILE_FIXED (+ name, name_len bytes)
-- and PEER_ENTRY.  HAVE's ranges count pieces, the others' chunks.
local RANGE = "start:u32 end:u32"
local PEER = "ip:ipv4 port:u16"
local FILE = "file_id:id size:u64 chunks:u32 chunk_size:u16 duration_ms:u32 sha256:sha name_len:u16"

local FLAGS = {[0x01] = "FLAG_LAST", [0x02] = "FLAG_RETRANSMIT", [0x04] = "FLAG_PAGE", [0x08] = "FLAG_FETCHING"}
local ORDERS = {[0] = "sequential", [1] = "random", [2] = "semi-random", [255] = "default"}
local ERRORS = {[1] = "NOT_FOUND", [2] = "FILE_GONE", [3] = "BAD_REQUEST",
                [4] = "BUSY", [5] = "UNKNOWN_SESSION"}
local VALUES = {["pf.pong.order"] = ORDERS, ["pf.request.order"] = ORDERS,
                ["pf.error.code"] = ERRORS}
local SIZES = {u8 = 1, u16 = 2, u32 = 4, u64 = 8, id = 8, sha = 32, x1 = 1, s2 = 2, ipv4 = 4}

---------------------------------------------------------------- fields
local pf = Proto("pf", "P2P FACOM")
local F = {}          -- abbrev -> ProtoField
local TYPE_NAMES = {}
for number, body in pairs(BODIES) do TYPE_NAMES[number] = body[1] end

local function parse_spec(spec)
  local out = {}
  for name, kind in spec:gmatch("([%w_]+):([%w_]+)") do
    out[#out + 1] = {name = name, kind = kind, size = SIZES[kind]}
  end
  return out
end

local function make_field(abbrev, kind, label)
  local values = VALUES[abbrev]
  if kind == "u8" then F[abbrev] = ProtoField.uint8(abbrev, label, base.DEC, values)
  elseif kind == "u16" then F[abbrev] = ProtoField.uint16(abbrev, label, base.DEC, values)
  elseif kind == "u32" then F[abbrev] = ProtoField.uint32(abbrev, label, base.DEC, values)
  elseif kind == "u64" then F[abbrev] = ProtoField.uint64(abbrev, label, base.DEC)
  elseif kind == "text" or kind == "s2" then F[abbrev] = ProtoField.string(abbrev, label, base.UNICODE)
  elseif kind == "ipv4" then F[abbrev] = ProtoField.ipv4(abbrev, label)
  elseif kind ~= "x1" then F[abbrev] = ProtoField.bytes(abbrev, label) end
end

local function make_fields(prefix, spec)
  local parsed = parse_spec(spec)
  for _, f in ipairs(parsed) do make_field(prefix .. "." .. f.name, f.kind, f.name) end
  return parsed
end

local HEADER_FIELDS = make_fields("pf", HEADER)
F["pf.type"] = ProtoField.uint8("pf.type", "type", base.DEC, TYPE_NAMES)
F["pf.session"] = ProtoField.uint32("pf.session", "session", base.HEX)
F["pf.crc"] = ProtoField.uint32("pf.crc", "crc32", base.HEX)
F["pf.flags"] = ProtoField.uint8("pf.flags", "flags", base.HEX)
F["pf.flags.last"] = ProtoField.bool("pf.flags.last", "last search page", 8, nil, 0x01)
F["pf.flags.retransmit"] = ProtoField.bool("pf.flags.retransmit", "retransmitted chunk", 8, nil, 0x02)
F["pf.flags.page"] = ProtoField.bool("pf.flags.page", "paged search", 8, nil, 0x04)
F["pf.flags.fetching"] = ProtoField.bool("pf.flags.fetching", "being fetched (HAVE hint)", 8, nil, 0x08)
F["pf.crc.status"] = ProtoField.uint8("pf.crc.status", "CRC-32 status", base.DEC, {[0] = "Bad", [1] = "Good", [2] = "Unverified (truncated capture)"})
F["pf.chunk.retransmission"] = ProtoField.bool("pf.chunk.retransmission", "Retransmission")
F["pf.emulated_drop"] = ProtoField.bool("pf.emulated_drop", "Dropped by the emulated link (not on the wire)")
F["pf.stream"] = ProtoField.uint32("pf.stream", "Session stream index")

local BODY_FIELDS, TAIL_PARTS = {}, {}
for number, body in pairs(BODIES) do
  local prefix = "pf." .. body[2]
  BODY_FIELDS[number] = make_fields(prefix, body[4])
  local tail, name = body[5]:match("(%w+):([%w_]+)")
  if tail == "ranges" or tail == "peers" then
    TAIL_PARTS[number] = make_fields(prefix .. "." .. name, tail == "ranges" and RANGE or PEER)
  elseif tail == "files" then
    TAIL_PARTS[number] = make_fields(prefix, FILE)
    make_field(prefix .. ".name", "text", "name")
  elseif tail == "paged" then
    make_field(prefix .. "." .. name, "u16", name)
    make_field(prefix .. ".query", "text", "query")
  elseif tail == "hashes" then
    make_field(prefix .. "." .. name, "sha", "hash")
  elseif tail then
    make_field(prefix .. "." .. name, tail, name)
  end
end

local fields = {}
for _, field in pairs(F) do fields[#fields + 1] = field end
pf.fields = fields

local E = {
  retransmission = ProtoExpert.new("pf.expert.retransmission", "Retransmitted chunk (asked for by a NACK)",
                                   expert.group.SEQUENCE, expert.severity.NOTE),
  bad_crc = ProtoExpert.new("pf.expert.bad_crc", "Bad CRC-32: the receiver drops this datagram",
                            expert.group.CHECKSUM, expert.severity.ERROR),
  malformed = ProtoExpert.new("pf.expert.malformed", "Malformed P2P FACOM datagram",
                              expert.group.MALFORMED, expert.severity.ERROR),
  dropped = ProtoExpert.new("pf.expert.emulated_drop", "Emulated drop: logged by the program, never delivered",
                            expert.group.COMMENTS_GROUP, expert.severity.NOTE),
}
pf.experts = {E.retransmission, E.bad_crc, E.malformed, E.dropped}

---------------------------------------------------------------- CRC-32
-- zlib's CRC-32 (reflected polynomial 0xEDB88320), one table lookup a byte.
local CRC_TABLE = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if bit32.band(c, 1) == 1 then c = bit32.bxor(0xEDB88320, bit32.rshift(c, 1))
    else c = bit32.rshift(c, 1) end
  end
  CRC_TABLE[n] = c
end

-- Arithmetic instead of bit32 where it can (a CHUNK is 1436 bytes): the low
-- byte is crc % 256, the shift (crc - low) / 256.
local function crc_update(crc, s)
  local bxor, byte, T = bit32.bxor, string.byte, CRC_TABLE
  for i = 1, #s do
    local low = crc % 256
    crc = bxor(T[bxor(low, byte(s, i))], (crc - low) / 256)
  end
  return crc
end

-- CRC-32 of the header with its crc32 field zeroed, then the body.
local function datagram_crc(raw)
  local crc = crc_update(0xFFFFFFFF, raw:sub(1, CRC_AT))
  crc = crc_update(crc, "\0\0\0\0")
  return bit32.bnot(crc_update(crc, raw:sub(HEADER_SIZE + 1)))
end

---------------------------------------------------------------- helpers
local ip_flags_rb = Field.new("ip.flags.rb")   -- pcap.py's emulated-drop mark

-- One session = one session id between the same two addresses.
local streams, stream_count = {}, 0
-- Frame number -> CRC status: Wireshark dissects a frame again on every
-- click and filter, and the CRC is most of the work.
local crc_of_frame = {}
function pf.init() streams, stream_count, crc_of_frame = {}, 0, {} end

local function stream_of(pinfo, session)
  local a = tostring(pinfo.src) .. ":" .. pinfo.src_port
  local b = tostring(pinfo.dst) .. ":" .. pinfo.dst_port
  if a > b then a, b = b, a end
  local key = session .. " " .. a .. " " .. b
  if not streams[key] then
    stream_count = stream_count + 1
    streams[key] = stream_count
  end
  return streams[key]
end

local function plural(n, word) return n .. " " .. word .. (n == 1 and "" or "s") end

-- Add the fields of `spec` found at `offset`; returns their values by name.
-- (`items`: their tree items)
local function add_fixed(tree, tvb, offset, prefix, spec)
  local values, items = {}, {}
  for _, f in ipairs(spec) do
    local range = tvb(offset, f.size)
    local field = F[prefix .. "." .. f.name]
    if f.kind == "u64" then values[f.name] = range:uint64()
    elseif f.size <= 4 and f.kind:sub(1, 1) == "u" then values[f.name] = range:uint()
    elseif f.kind == "ipv4" then values[f.name] = tostring(range:ipv4())
    end
    if field then items[f.name] = tree:add(field, range) end
    offset = offset + f.size
  end
  return values, offset, items
end

local function spec_size(spec)
  local n = 0
  for _, f in ipairs(spec) do n = n + f.size end
  return n
end

-- Tails: each reads a body's variable part from `c.offset` (c: tree, tvb,
-- offset, rest, prefix, name, spec, info, flags) and returns true, or nil
-- and why the body is malformed (protocol.py's words).
local TAILS = {}

-- `count` parts of `c.spec`, each under an item `label`; `visit(item, v)`
-- checks and labels one.
local function each_part(c, label, visit)
  local size, offset = spec_size(c.spec), c.offset
  if c.rest ~= c.info.count * size then return nil, label:lower() .. " list length does not match its count" end
  for _ = 1, c.info.count do
    local item = c.tree:add(pf, c.tvb(offset, size), label)
    local ok, err = visit(item, add_fixed(item, c.tvb, offset, c.prefix .. "." .. c.name, c.spec))
    if not ok then return nil, err end
    offset = offset + size
  end
  return true
end

-- Chunk ranges, or piece ranges when the fixed part has a piece count (HAVE).
function TAILS.ranges(c)
  local info, unit = c.info, c.info.pieces and "piece" or "chunk"
  info.total, info.shown = 0, {}
  return each_part(c, "Range", function(item, v)
    local size = v["end"] - v.start
    item:set_text(string.format("Range [%d, %d): %s", v.start, v["end"], plural(size, unit)))
    if size <= 0 then return nil, "empty or reversed range" end
    if info.pieces and v["end"] > info.pieces then return nil, "piece range past the piece count" end
    info.total = info.total + size
    if #info.shown < MAX_INFO_RANGES then info.shown[#info.shown + 1] = v end
    return true
  end)
end

-- PEERS' list: an IPv4 address and a port each.
function TAILS.peers(c)
  local shown = {}
  if c.info.count > MAX_PEERS_LISTED then return nil, "more peers than a PEERS may list" end
  local ok, err = each_part(c, "Peer", function(item, v)
    local address = v.ip .. ":" .. v.port
    item:set_text("Peer " .. address)
    if v.port == 0 then return nil, "peer port 0" end
    if #shown < MAX_INFO_RANGES then shown[#shown + 1] = address end
    return true
  end)
  if c.info.count > #shown then shown[#shown + 1] = "…" end
  c.info.peers = table.concat(shown, ", ")
  return ok, err
end

function TAILS.files(c)
  local tvb, offset, fixed, names = c.tvb, c.offset, spec_size(c.spec), {}
  local err = "file list does not match its count"
  for _ = 1, c.info.count do
    if tvb:reported_len() < offset + fixed then return nil, err end
    local item = c.tree:add(pf, tvb(offset, fixed), "File")
    local v = add_fixed(item, tvb, offset, c.prefix, c.spec)
    offset = offset + fixed
    if tvb:reported_len() < offset + v.name_len then return nil, err end
    local name = tvb(offset, v.name_len):string(ENC_UTF_8)
    if v.name_len > 0 then item:add(F[c.prefix .. ".name"], tvb(offset, v.name_len), name) end
    item:set_len(fixed + v.name_len)
    item:set_text(string.format('File "%s": %s bytes, %d chunks', name, tostring(v.size), v.chunks))
    names[#names + 1] = name
    offset = offset + v.name_len
  end
  c.info.names = table.concat(names, ", ")
  if offset ~= tvb:reported_len() then return nil, err end
  return true
end

-- SEARCH's page (when FLAG_PAGE) and query.
function TAILS.paged(c)
  local tvb, offset, page = c.tvb, c.offset, 0
  if bit32.btest(c.flags, 0x04) then
    if c.rest < 2 then return nil, "body too short" end
    page = tvb(offset, 2):uint()
    c.tree:add(F[c.prefix .. ".page"], tvb(offset, 2))
    offset = offset + 2
  else
    c.tree:add(F[c.prefix .. ".page"], 0):set_generated()
  end
  c.info.page = page
  if tvb:reported_len() > offset then
    local range = tvb(offset, tvb:reported_len() - offset)
    c.info.query = range:string(ENC_UTF_8)
    c.tree:add(F[c.prefix .. ".query"], range, c.info.query)
  end
  return true
end

-- HASH_PAGE's hashes, 32 bytes each.
function TAILS.hashes(c)
  if c.rest % 32 ~= 0 then return nil, "hash list is not a whole number of hashes" end
  if c.info.page >= c.info.pages then return nil, "page number past the page count" end
  for at = c.offset, c.offset + c.rest - 32, 32 do c.tree:add(F[c.prefix .. "." .. c.name], c.tvb(at, 32)) end
  c.info.hashes = c.rest / 32
  return true
end

function TAILS.text(c)
  if c.rest > 0 then
    local range = c.tvb(c.offset, c.rest)
    c.info[c.name] = range:string(ENC_UTF_8)
    c.tree:add(F[c.prefix .. "." .. c.name], range, c.info[c.name])
  end
  return true
end

-- Raw bytes (CHUNK data, PING padding): a capture may keep only their start.
function TAILS.data(c)
  if c.rest == 0 then return true end
  local kept = math.min(c.rest, c.tvb:len() - c.offset)
  local item = c.tree:add(F[c.prefix .. "." .. c.name], c.tvb(c.offset, kept))
  if kept < c.rest then item:append_text(string.format(" (%d of %d bytes captured)", kept, c.rest)) end
  return true
end
TAILS.padding = TAILS.data

-- The body starts at HEADER_SIZE and ends with the datagram.
-- Returns `info` (values for the Info column) or nil, reason.
local function add_body(tree, tvb, number, flags)
  local body = BODIES[number]
  local prefix, spec = "pf." .. body[2], BODY_FIELDS[number]
  local tail, name = body[5]:match("(%w+):([%w_]+)")
  local size_error = tail and "body too short" or string.format("body must be %d bytes", spec_size(spec))
  if tvb:reported_len() < HEADER_SIZE + spec_size(spec) then return nil, size_error end
  local info, offset = add_fixed(tree, tvb, HEADER_SIZE, prefix, spec)
  info.rest = tvb:reported_len() - offset
  if not tail then
    if info.rest ~= 0 then return nil, size_error end
    return info
  end
  local ok, err = TAILS[tail]({tree = tree, tvb = tvb, offset = offset, rest = info.rest, prefix = prefix,
                               name = name, spec = TAIL_PARTS[number], info = info, flags = flags})
  if not ok then return nil, err end
  return info
end

---------------------------------------------------------------- Info column
local function order_text(v) return ORDERS[v] or ("order " .. v) end

-- The first ranges: "[40–45) [90–96)" (chunks) or "0-3, 7" (pieces).
local function ranges_text(v)
  local out = {}
  for _, r in ipairs(v.shown) do
    if not v.pieces then out[#out + 1] = string.format("[%d–%d)", r.start, r["end"])
    elseif r["end"] - r.start == 1 then out[#out + 1] = string.format("%d", r.start)
    else out[#out + 1] = string.format("%d-%d", r.start, r["end"] - 1) end
  end
  if v.count > #out then out[#out + 1] = "…" end
  return table.concat(out, v.pieces and ", " or " ")
end

local INFO = {
  PING = function(v) return string.format("PING nonce %d (%d bytes of padding)", v.nonce, v.rest) end,
  PONG = function(v) return string.format('PONG "%s": %s, load %d, %s', v.name or "", plural(v.files, "file"), v.load,
      order_text(v.order) .. (v.order == 2 and string.format(" (%d %% in order)", v.ordered_percent) or "")) end,
  SEARCH = function(v) return string.format('SEARCH "%s"%s', v.query or "", v.page > 0 and (" page " .. v.page) or "") end,
  SEARCH_RESULT = function(v, flags) return string.format("SEARCH_RESULT %s%s%s", plural(v.count, "file"),
      v.count > 0 and (": " .. v.names) or "", bit32.btest(flags, 0x01) and " (last page)" or "") end,
  REQUEST = function(v) return string.format("REQUEST %s, %s, window %d", order_text(v.order), plural(v.count, "range"), v.window) end,
  CHUNK = function(v, flags) return string.format("CHUNK #%d%s seq %d", v.index,
      bit32.btest(flags, 0x02) and " (retransmission)" or "", v.tx_seq) end,
  ACK = function(v) return string.format("ACK: send up to seq %d", v.limit) end,
  NACK = function(v) return string.format("NACK round %d: %s %s", v.round, plural(v.total, "chunk"), ranges_text(v)) end,
  CANCEL = function() return "CANCEL" end,
  DONE = function(v) return string.format("DONE sent %d, resent %d, dropped %d, duplicated %d",
                                          v.sent, v.resent, v.dropped, v.duplicated) end,
  RETRY = function(v) return string.format("RETRY: ask again with token 0x%08x", v.token) end,
  ERROR = function(v) return string.format("ERROR %s: %s", ERRORS[v.code] or v.code, v.text or "") end,
  HASHES = function(v) return string.format("HASHES: page %d of the piece hash list, please", v.page) end,
  HASH_PAGE = function(v) return string.format("HASH_PAGE %d of %d: %s", v.page + 1, v.pages, plural(v.hashes, "piece hash")) end,
  HAVE = function(v, flags) return v.count == 0 and string.format("HAVE: no piece yet of %d (shares the song)", v.pieces)
      or bit32.btest(flags, 0x08) and string.format("HAVE: fetching %s %s of %d from a seeder", v.total == 1 and "piece" or "pieces", ranges_text(v), v.pieces)
      or string.format("HAVE: %s %s of %d (shares them)", v.total == 1 and "piece" or "pieces", ranges_text(v), v.pieces) end,
  GET_PEERS = function() return "GET_PEERS: who else shares this song?" end,
  PEERS = function(v) return string.format("PEERS: %s%s", plural(v.count, "peer"), v.count > 0 and (": " .. v.peers) or "") end,
}

---------------------------------------------------------------- dissector
local function is_pf(tvb)
  return tvb:len() >= HEADER_SIZE and tvb(0, 2):string() == MAGIC and tvb(2, 1):uint() == VERSION
end

local function add_header(tree, tvb)
  local v, _, items = add_fixed(tree, tvb, 0, "pf", HEADER_FIELDS)
  items.flags:add(F["pf.flags.last"], tvb(4, 1))    -- the bits, under their byte
  items.flags:add(F["pf.flags.retransmit"], tvb(4, 1))
  items.flags:add(F["pf.flags.page"], tvb(4, 1))
  items.flags:add(F["pf.flags.fetching"], tvb(4, 1))
  return v
end

-- Good (1) or bad (0); unverified (2) when the capture kept only a part.
local function check_crc(tree, tvb, want, frame)
  local status = crc_of_frame[frame]
  if not status then
    status = 2
    if tvb:len() == tvb:reported_len() then status = datagram_crc(tvb:raw()) == want and 1 or 0 end
    crc_of_frame[frame] = status
  end
  local item = tree:add(F["pf.crc.status"], tvb(CRC_AT, 4), status)
  item:set_generated()
  if status == 0 then item:add_proto_expert_info(E.bad_crc) end
  return status ~= 0
end

function pf.dissector(tvb, pinfo, root)
  if not is_pf(tvb) then return 0 end
  pinfo.cols.protocol = "P2P-FACOM"
  local tree = root:add(pf, tvb())
  local h = add_header(tree, tvb)
  local body_len = tvb:reported_len() - HEADER_SIZE
  local crc_good = check_crc(tree, tvb, h.crc, pinfo.number)
  local stream = tree:add(F["pf.stream"], stream_of(pinfo, h.session))
  stream:set_generated()
  local body = BODIES[h.type]
  local text
  if h.length ~= body_len or tvb:reported_len() > MAX_DATAGRAM then
    tree:add_proto_expert_info(E.malformed, "length field does not match the datagram")
  end
  if not body then
    tree:add_proto_expert_info(E.malformed, "unknown message type " .. h.type)
    text = "unknown type " .. h.type
  else
    local btree = tree:add(pf, tvb(HEADER_SIZE, tvb:len() - HEADER_SIZE), body[1])
    local info, err = add_body(btree, tvb, h.type, h.flags)
    if info then text = INFO[body[1]](info, h.flags)
    else
      btree:add_proto_expert_info(E.malformed, err)
      text = body[1] .. " (malformed: " .. err .. ")"
    end
    if h.type == 6 and bit32.btest(h.flags, 0x02) then
      tree:add(F["pf.chunk.retransmission"], true):set_generated()
      tree:add_proto_expert_info(E.retransmission)
    end
  end
  local rb = ip_flags_rb()
  if rb and rb.value then
    tree:add(F["pf.emulated_drop"], true):set_generated()
    tree:add_proto_expert_info(E.dropped)
    text = "[emulated drop] " .. text
  end
  if not crc_good then text = text .. " [bad CRC]" end
  pinfo.cols.info = text
  tree:append_text(", " .. text)
  return tvb:reported_len()
end

local function heuristic(tvb, pinfo, root)
  if not is_pf(tvb) then return false end
  pf.dissector(tvb, pinfo, root)
  return true
end

pf:register_heuristic("udp", heuristic)
DissectorTable.get("udp.port"):add(9000, pf)   -- the seeders' default port
