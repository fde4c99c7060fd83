using System.Text.Json;
using Histo.Evaluation;

namespace Histo.Tests;

/// <summary>The Hungarian solver against SciPy's linear_sum_assignment (tools/reference/assignment_reference.py): the same
/// optimal total on square, wide and tall matrices, with ties; where the optimum is unique, the same pairs.</summary>
public class LinearAssignmentTests
{
    [Fact]
    public void MatchesScipy()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "assignment-golden.json")));
        foreach (var c in doc.RootElement.EnumerateObject())
        {
            var rowsOfCost = c.Value.GetProperty("cost").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray())
                .ToArray();
            var cost = new double[rowsOfCost.Length, rowsOfCost[0].Length];
            for (int i = 0; i < rowsOfCost.Length; i++) for (int j = 0; j < rowsOfCost[i].Length; j++) cost[i, j] = rowsOfCost[i][j];
            var (rows, columns) = LinearAssignment.Solve(cost);
            Assert.Equal(Math.Min(cost.GetLength(0), cost.GetLength(1)), rows.Length);
            Assert.Equal(rows.Length, columns.Distinct().Count());
            double total = rows.Zip(columns).Sum(p => cost[p.First, p.Second]);
            Assert.Equal(c.Value.GetProperty("total").GetDouble(), total, 1e-9);
            if (!c.Name.StartsWith("ties"))
                Assert.Equal(c.Value.GetProperty("columns").EnumerateArray().Select(e => e.GetInt32()), columns);
        }
    }
}
