#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the section-3 manual pages of libkitd from its public headers.

The headers are the one source of truth: each KITD_API function gets a page
named after it, made of its prototype, the comment just above it and, when
the function sits in a group of declarations under one comment, that group's
comment. Types the prototype uses that the header defines (structs, enums,
callback typedefs) are shown in the synopsis. libkitd(3) lists every page.

Usage: mkman3.py OUTDIR include/kitd/*.h
The date of the pages is SOURCE_DATE_EPOCH when set, else the newest
header's mtime, so a rebuild from the same sources gives the same pages.
"""
import os
import re
import sys
import time

MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]


def tokens(text):
    """Split a header into ('comment', text), ('code', text) and ('blank',)
    items, in order. A blank line ends a group of declarations. Comments and
    blank lines inside braces or parentheses (struct fields) stay code."""
    items = []
    i, n = 0, len(text)
    code = ""
    depth = 0
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            if depth > 0:
                code += text[i:j]
            else:
                if code.strip():
                    items.append(("code", code))
                code = ""
                items.append(("comment", text[i:j]))
            i = j
        elif depth == 0 and re.match(r"\n[ \t]*\n", text[i:]):
            if code.strip():
                items.append(("code", code))
            code = ""
            items.append(("blank",))
            m = re.match(r"\n([ \t]*\n)+", text[i:])
            i += m.end()
        else:
            if text[i] in "({":
                depth += 1
            elif text[i] in ")}":
                depth -= 1
            code += text[i]
            i += 1
    if code.strip():
        items.append(("code", code))
    return items


def comment_text(c):
    """The text of a block comment, without the markers and leading stars."""
    body = c[2:-2] if c.endswith("*/") else c[2:]
    lines = []
    for line in body.split("\n"):
        line = re.sub(r"^\s*\* ?", "", line) if re.match(r"^\s*\*", line) else line.strip()
        lines.append(line.rstrip())
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def statements(code):
    """Split code at top-level semicolons, keeping preprocessor lines out."""
    out, cur, depth = [], "", 0
    for line in code.split("\n"):
        if line.lstrip().startswith("#"):
            continue
        for ch in line + "\n":
            cur += ch
            if ch in "({":
                depth += 1
            elif ch in ")}":
                depth -= 1
            elif ch == ";" and depth == 0:
                out.append(cur.strip())
                cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def split_args(args):
    out, cur, depth = [], "", 0
    for ch in args:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_proto(stmt):
    """KITD_API <type> name(args) [attributes]; -> (type, name, [args])."""
    s = " ".join(stmt.split())
    s = re.sub(r"\s*__attribute__\s*\(\(.*\)\)\s*;?$", "", s).rstrip(";").strip()
    s = re.sub(r"^KITD_API\s+", "", s)
    m = re.match(r"^(.*?)\b([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$", s)
    if not m:
        return None
    ftype, name, args = m.group(1).strip(), m.group(2), m.group(3)
    # "char *" reads better than "char*"; keep the star on the type.
    ftype = re.sub(r"\s*\*", " *", ftype).replace("* *", "**").strip()
    return ftype, name, split_args(args)


def esc(line):
    """Escape one line of text for roff: backslashes, and a leading dot or
    quote that roff would read as a request."""
    line = line.replace("\\", "\\e")
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


FUNREF = re.compile(r"\b(kitd_[A-Za-z0-9_]+)\(\)([.,:;)\]]*)")


def uni(line):
    """Non-ASCII characters as roff escapes: the pages stay ASCII."""
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in line)


def wrap(line, width=79):
    """Break a text line longer than `width` bytes at spaces."""
    out = []
    while len(line) > width and " " in line[:width]:
        cut = line.rfind(" ", 0, width)
        if cut <= 0:
            break
        out.append(line[:cut])
        line = line[cut + 1:].lstrip()
    out.append(line)
    return out


def text_lines(line, self_name=None, known=()):
    """One line of comment text -> roff lines. mdoc wants each sentence on
    its own line: break after ". " when a capital or a digit follows (not
    after e.g. "i.e."). A function named as kitd_x() becomes a cross
    reference (.Xr), or .Fn for the page's own function."""
    out = []
    parts = re.split(r"(?<=[A-Za-z0-9)\]'\"`][.?!]) +(?=[A-Z0-9(])", line)
    for part in parts:
        part = part.strip()
        while part:
            m = FUNREF.search(part)
            if not m:
                out.extend(wrap(uni(esc(part))))
                break
            before = part[:m.start()].rstrip()
            if before:
                out.extend(wrap(uni(esc(before))))
            name, punct = m.group(1), m.group(2)
            macro = ".Fn %s" % name if name == self_name or name not in known else ".Xr %s 3" % name
            if punct:
                macro += " " + " ".join(punct)
            out.append(macro)
            part = part[m.end():].strip()
    return out


def prose(text, self_name=None, known=()):
    """Header comment text -> mdoc body: paragraphs, "- " lists, and
    indented lines (examples, log lines) as literal displays."""
    out = []
    in_list = False
    literal = False
    paras = text.split("\n")
    first = True
    for raw in paras:
        line = raw.rstrip()
        if not line.strip():
            if literal:
                out.append(".Ed")
                literal = False
            if in_list:
                out.append(".El")
                in_list = False
            if not first:
                out.append(".Pp")
            continue
        if line.startswith("  ") and not in_list:
            if not literal:
                if out and out[-1] != ".Pp" and not first:
                    pass
                out.append(".Bd -literal -offset indent")
                literal = True
            out.append(uni(esc(line[2:])) if line[2:].strip() else "")
            first = False
            continue
        if literal:
            out.append(".Ed")
            literal = False
        m = re.match(r"^\s*- (.*)$", line)
        if in_list and not m and not line.startswith("  "):
            # A list item's continuation lines are indented: a line at the
            # margin ends the list.
            out.append(".El")
            in_list = False
        if m:
            if not in_list:
                out.append(".Bl -dash -compact")
                in_list = True
            out.append(".It")
            out.extend(text_lines(m.group(1), self_name, known))
        else:
            out.extend(text_lines(line.strip(), self_name, known))
        first = False
    if literal:
        out.append(".Ed")
    if in_list:
        out.append(".El")
    while out and out[-1] == ".Pp":
        out.pop()
    # mandoc flags a paragraph break right before a display or list.
    cleaned = []
    for i, l in enumerate(out):
        if l == ".Pp" and (not cleaned or cleaned[-1] == ".Pp"):
            continue
        cleaned.append(l)
    return cleaned


def parse_header(path):
    text = open(path, encoding="utf-8").read()
    # The C++ guards and every preprocessor line (with its continuations)
    # are not declarations; a line left empty keeps a group boundary.
    text = re.sub(r"#ifdef __cplusplus\n.*?#endif[^\n]*", "", text, flags=re.S)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)
    items = tokens(text)
    funcs, types = [], {}
    group = None       # comment heading the current run of declarations
    last_comment = None
    adjacent = False   # last_comment is directly above the next code
    file_comment = None
    pending = None     # a comment standing alone (a blank line after it)
    section = None     # ... which then heads the run of declarations after it
    for it in items:
        if it[0] == "blank":
            if adjacent and last_comment is not file_comment:
                pending = last_comment.strip("- ").strip()
            else:
                section = None
            group = None
            adjacent = False
            continue
        if it[0] == "comment":
            c = comment_text(it[1])
            # The licence line is not documentation.
            c = "\n".join(l for l in c.split("\n") if "SPDX-License-Identifier" not in l).strip("\n")
            if not c.strip():
                continue
            if file_comment is None and not funcs and not types:
                file_comment = c
            last_comment = c
            adjacent = True
            continue
        for st in statements(it[1]):
            own = last_comment if adjacent else None
            adjacent = False
            if group is None:
                group = own
                section, pending = pending, None
            if st.startswith("typedef") and "{" in st or re.match(r"typedef\s.*\(\s*\*", st):
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*;?$", st.rstrip(";").strip()) \
                    if "{" in st else re.search(r"\(\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", st)
                if m:
                    types[m.group(1)] = (own, st if st.endswith(";") else st + ";")
                continue
            if "KITD_API" not in st:
                continue
            p = parse_proto(st)
            if not p:
                sys.exit("%s: cannot parse: %s" % (path, st))
            funcs.append({"type": p[0], "name": p[1], "args": p[2], "own": own,
                          "group": group, "section": section,
                          "header": os.path.basename(path)})
    # Each function's neighbours in its group, for SEE ALSO.
    for f in funcs:
        f["group_names"] = [g["name"] for g in funcs
                            if g["group"] is not None and g["group"] is f["group"]]
    return file_comment, funcs, types


def summary(comment):
    """The first sentence of a comment, without parentheses, for .Nd."""
    text = " ".join(comment.split("\n\n")[0].split())
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\s*\([^()]*\)", "", text)
    text = re.split(r"(?<=[A-Za-z0-9'\"`][.:;]) ", text)[0].rstrip(".,:; ")
    if not text:
        return "libkitd function"
    if re.match(r"^[A-Z][a-z]*\b", text):
        text = text[0].lower() + text[1:]
    return text


def page(f, types, date, all_names):
    name = f["name"]
    out = [".\\\" SPDX-License-Identifier: MIT",
           ".\\\" Generated by docs/man/mkman3.py from include/kitd/%s: edit the header." % f["header"],
           ".Dd %s" % date, ".Dt %s 3" % name.upper(), ".Os",
           ".Sh NAME", ".Nm %s" % name]
    out.append(".Nd %s" % uni(summary(f["own"] or f["group"] or f["section"] or "")).replace("\\", "\\e").replace("\\e&", "\\&"))
    out += [".Sh LIBRARY", "libkitd", ".Pq Fl lkitd", ".Sh SYNOPSIS", ".In kitd/%s" % f["header"]]
    # The types the prototype names, and the types those name, in header order.
    seen_text = " ".join([f["type"]] + f["args"])
    used = []
    grew = True
    while grew:
        grew = False
        for t in types:
            if t not in used and re.search(r"\b%s\b" % re.escape(t), seen_text):
                used.append(t)
                seen_text += " " + types[t][1]
                grew = True
    used = [t for t in types if t in used]
    if used:
        out.append(".Bd -literal")
        for t in used:
            for line in types[t][1].split("\n"):
                out.append(esc(line.rstrip()))
        out.append(".Ed")
    out.append(".Ft %s" % f["type"])
    out.append(".Fo %s" % name)
    for a in f["args"]:
        out.append('.Fa "%s"' % a.replace('"', ""))
    out.append(".Fc")
    out.append(".Sh DESCRIPTION")
    # The run's standalone heading, then the function's own comment, or,
    # when it has none, the comment heading its group.
    body = []
    for c in (f["section"], f["own"] or f["group"]):
        if c:
            if body:
                body.append(".Pp")
            body += prose(c, name, all_names)
    if not body:
        body = ["See", ".Xr libkitd 3 ."]
    out += body
    see = [n for n in f["group_names"] if n != name]
    mentioned = re.findall(r"\b(kitd_[a-z0-9_]+)\(\)", (f["own"] or "") + (f["group"] or ""))
    for n in mentioned:
        if n in all_names and n != name and n not in see:
            see.append(n)
    out.append(".Sh SEE ALSO")
    refs = [".Xr %s 3" % n for n in sorted(see + ["libkitd"])]
    out += [r + " ," for r in refs[:-1]] + refs[-1:]
    return "\n".join(out) + "\n"


def index_page(headers, date):
    out = [".\\\" SPDX-License-Identifier: MIT",
           ".\\\" Generated by docs/man/mkman3.py from include/kitd/*.h.",
           ".Dd %s" % date, ".Dt LIBKITD 3", ".Os", ".Sh NAME", ".Nm libkitd",
           ".Nd client-side service discovery and load balancing",
           ".Sh LIBRARY", "libkitd", ".Pq Fl lkitd", ".Sh SYNOPSIS", ".In kitd/kitd.h",
           ".Sh DESCRIPTION",
           "libkitd watches a service registry, keeps an endpoint per live instance,",
           "balances calls across them and retries failed ones.",
           "Link with",
           ".Ql pkg-config --cflags --libs libkitd",
           "or, in CMake,",
           ".Ql find_package(libkitd CONFIG)",
           "and the target",
           ".Ql kitd::kitd .",
           "Each header and its functions:"]
    out.append(".Bl -tag -width Ds")
    for h, comment, funcs in headers:
        if not funcs:
            continue
        out.append(".It In kitd/%s" % h)
        first = (comment or "").split("\n")[0]
        first = re.sub(r"^libkitd:\s*", "", first)
        if first:
            out += text_lines(first[:1].upper() + first[1:])
        refs = [".Xr %s 3" % f["name"] for f in funcs]
        out += [r + " ," for r in refs[:-1]] + refs[-1:]
    out.append(".El")
    out += [".Sh SEE ALSO", ".Xr kitd-watch 1"]
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: mkman3.py OUTDIR HEADER...")
    outdir, paths = sys.argv[1], sorted(sys.argv[2:])
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = int(epoch) if epoch else int(max(os.path.getmtime(p) for p in paths))
    tm = time.gmtime(t)
    date = "%s %d, %d" % (MONTHS[tm.tm_mon - 1], tm.tm_mday, tm.tm_year)
    parsed = [(os.path.basename(p),) + parse_header(p) for p in paths]
    all_names = {f["name"] for _, _, funcs, _ in parsed for f in funcs}
    os.makedirs(outdir, exist_ok=True)
    for old in os.listdir(outdir):
        if old.endswith(".3"):
            os.remove(os.path.join(outdir, old))
    for _, _, funcs, types in parsed:
        for f in funcs:
            with open(os.path.join(outdir, f["name"] + ".3"), "w", encoding="utf-8") as fh:
                fh.write(page(f, types, date, all_names))
    with open(os.path.join(outdir, "libkitd.3"), "w", encoding="utf-8") as fh:
        fh.write(index_page([(h, c, funcs) for h, c, funcs, _ in parsed], date))
    print("%d pages in %s" % (len(all_names) + 1, outdir))


if __name__ == "__main__":
    main()
