using System.Text;

namespace Histo.IO;

/// <summary>
/// A CSV file as spreadsheets and pandas write it (RFC 4180): a header row, quoted fields with commas, doubled quotes
/// and line breaks inside, a UTF-8 byte-order mark, CRLF or LF line ends, blank lines skipped. The one reader of
/// label, split and mpp CSVs, so a file that one command accepts every command accepts.
/// </summary>
public sealed class CsvTable
{
    public string Path { get; }
    public IReadOnlyList<string> Header { get; }
    /// <summary>Data rows with their 1-based line number in the file (for error messages).</summary>
    public IReadOnlyList<(int Line, string[] Cells)> Rows { get; }

    CsvTable(string path, IReadOnlyList<string> header, IReadOnlyList<(int, string[])> rows) { Path = path; Header = header; Rows = rows; }

    /// <summary>Column index of <paramref name="name"/> (case-insensitive, trimmed), or -1.</summary>
    public int Column(string name) => Header.ToList().FindIndex(h => string.Equals(h, name, StringComparison.OrdinalIgnoreCase));

    public static CsvTable Read(string path, string what)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: {what} not found; check the path");
        string text;
        try { text = File.ReadAllText(path, Encoding.UTF8); } // strips a UTF-8 BOM
        catch (IOException e) { throw new HistoException($"{path}: cannot read the {what} ({e.Message})"); }
        var records = Parse(text, path);
        if (records.Count == 0) throw new HistoException($"{path}: the {what} is empty; it needs a header row");
        var header = records[0].Cells.Select(h => h.Trim()).ToArray();
        var rows = new List<(int, string[])>();
        foreach (var (line, cells) in records.Skip(1))
        {
            if (cells.All(string.IsNullOrWhiteSpace)) continue;
            if (cells.Length != header.Length)
                throw new HistoException($"{path}:{line}: {cells.Length} fields, the header has {header.Length}; check commas and quotes");
            rows.Add((line, cells.Select(c => c.Trim()).ToArray()));
        }
        return new CsvTable(path, header, rows);
    }

    static List<(int Line, string[] Cells)> Parse(string text, string path)
    {
        var records = new List<(int, string[])>();
        var cells = new List<string>();
        var cell = new StringBuilder();
        bool quoted = false, any = false;
        int line = 1, start = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { cell.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else { if (c == '\n') line++; cell.Append(c); }
                continue;
            }
            switch (c)
            {
                case '"' when cell.Length == 0: quoted = true; any = true; break;
                case ',': cells.Add(cell.ToString()); cell.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    if (any || cell.Length > 0) { cells.Add(cell.ToString()); records.Add((start, cells.ToArray())); }
                    cells.Clear(); cell.Clear(); any = false; line++; start = line;
                    break;
                default: cell.Append(c); any = true; break;
            }
        }
        if (quoted) throw new HistoException($"{path}:{start}: a quoted field is not closed");
        if (any || cell.Length > 0) { cells.Add(cell.ToString()); records.Add((start, cells.ToArray())); }
        return records;
    }
}
