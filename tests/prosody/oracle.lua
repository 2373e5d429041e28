-- Ask the installed Prosody's own code what it does, for differential tests.
-- Reads commands from stdin, one per line, arguments hex-encoded so that any
-- byte (newline, NUL, invalid UTF-8) can be passed:
--   prep HEX            -> util.jid.prep(bytes), "-" when rejected
-- Answers one line per command, hex-encoded.
package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
local jid = require "util.jid"

local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

for line in io.lines() do
  local cmd, arg = line:match("^(%S+) ?(%x*)$")
  if cmd == "prep" then
    local out = jid.prep(unhex(arg))
    io.write(out and hex(out) or "-", "\n")
  else
    io.write("?\n")
  end
  io.flush()
end
